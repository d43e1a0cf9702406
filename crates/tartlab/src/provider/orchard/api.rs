//! Orchard's REST API, as much of it as tartlab uses (shared/orchard-api.md is the reference:
//! the wire facts come from Orchard's Go structs, pkg/resource/v1, and its handlers,
//! internal/controller/api*.go): Basic auth on every request, JSON both ways with unknown
//! fields ignored (a newer controller adds some), and every failure turned into words: a
//! 401 says whether the credentials or a role are wrong, 404/409/412 carry the controller's
//! `{"message"}`, an unreachable controller says nothing was changed.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::config::Credentials;
use crate::provider::ProviderError;

/// How long one plain request may take (the long waits, `/ip` and the port-forward, add
/// their own `wait`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The most of one answer tartlab reads, JSON or an error's body: Orchard's largest is the
/// VM list, about 2 KiB a VM, so 4 MiB holds some two thousand VMs. A larger answer is not
/// an Orchard controller's (or not one tartlab should hold in memory): an error.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// A VM as the controller reports it; only the fields tartlab reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Vm {
    pub name: String,
    pub uid: String,
    /// `pending`, `running` or `failed`.
    pub status: String,
    pub status_message: String,
    /// The worker the scheduler gave it, empty while unscheduled.
    pub worker: String,
    pub image: String,
    pub cpu: u64,
    pub memory: u64,
    #[serde(rename = "assignedCPU")]
    pub assigned_cpu: u64,
    #[serde(rename = "assignedMemory")]
    pub assigned_memory: u64,
    pub labels: BTreeMap<String, String>,
    pub resources: BTreeMap<String, u64>,
}

impl Vm {
    pub fn is_running(&self) -> bool {
        self.status == "running"
    }

    pub fn is_failed(&self) -> bool {
        self.status == "failed"
    }
}

/// A VM to create: `POST /v1/vms`.
#[derive(Debug, Clone, Serialize)]
pub struct NewVm {
    pub name: String,
    pub image: String,
    pub cpu: u64,
    pub memory: u64,
    #[serde(rename = "diskSize", skip_serializing_if = "Option::is_none")]
    pub disk_size: Option<u64>,
    pub os: &'static str,
    pub arch: &'static str,
    pub runtime: &'static str,
    pub headless: bool,
    #[serde(rename = "netSoftnet", skip_serializing_if = "std::ops::Not::not")]
    pub net_softnet: bool,
    #[serde(rename = "netSoftnetAllow", skip_serializing_if = "Vec::is_empty")]
    pub net_softnet_allow: Vec<String>,
    #[serde(rename = "netSoftnetBlock", skip_serializing_if = "Vec::is_empty")]
    pub net_softnet_block: Vec<String>,
    #[serde(rename = "net-bridged", skip_serializing_if = "String::is_empty")]
    pub net_bridged: String,
    pub labels: BTreeMap<String, String>,
    pub resources: BTreeMap<String, u64>,
    pub username: String,
    pub password: String,
    pub restart_policy: &'static str,
}

/// A worker as the controller reports it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Worker {
    pub name: String,
    pub last_seen: String,
    pub scheduling_paused: bool,
    pub resources: BTreeMap<String, u64>,
    pub labels: BTreeMap<String, String>,
    pub arch: String,
    pub runtime: String,
}

/// One of a VM's events (the worker's startup-script lines, and whatever else posts them).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Event {
    pub kind: String,
    pub timestamp: i64,
    pub payload: String,
}

/// `GET /v1/controller/info`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ControllerInfo {
    pub version: String,
    pub capabilities: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Message {
    message: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Ip {
    ip: String,
}

/// What a request to the controller ended with, before it becomes a `ProviderError`.
#[derive(Debug)]
pub enum Refusal {
    /// Nothing came back: the controller is not there (or not at this URL).
    Unreachable(String),
    /// An HTTP status, and the controller's `message` if it gave one.
    Status(u16, String),
    /// A body that is not what Orchard sends.
    Garbled(String),
    /// A body larger than `MAX_BODY_BYTES`, left unread past that.
    TooLarge,
}

/// The controller, reached with one account.
#[derive(Clone)]
pub struct Controller {
    http: reqwest::Client,
    pub credentials: Credentials,
}

/// tartlab's User-Agent: Orchard expects one on WebSockets (without it, it speaks text
/// frames to old clients).
pub fn user_agent() -> String {
    format!("tartlab/{}", env!("CARGO_PKG_VERSION"))
}

impl Controller {
    pub fn new(credentials: Credentials) -> Result<Controller, ProviderError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(user_agent())
            .connect_timeout(Duration::from_secs(10))
            // The port-forward is an HTTP/1.1 upgrade.
            .http1_only()
            // Orchard's API never redirects; following one could carry the Basic credentials
            // to plain http (reqwest keeps them when only the scheme changes).
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &credentials.certificate {
            builder = builder.use_preconfigured_tls(super::pinning::client_config(pem)?);
        }
        let http = builder.build().map_err(|e| {
            ProviderError::new(
                format!("cannot set up an HTTP client for Orchard: {e}"),
                "check this host's TLS root certificates",
            )
        })?;
        Ok(Controller { http, credentials })
    }

    pub fn url(&self) -> &str {
        &self.credentials.url
    }

    pub fn endpoint(&self, path: &str) -> String {
        format!(
            "{}/v1/{}",
            self.credentials.url,
            path.trim_start_matches('/')
        )
    }

    /// A request with the account's Basic auth, the token only in the header.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.endpoint(path)).basic_auth(
            &self.credentials.account,
            Some(self.credentials.token.reveal()),
        )
    }

    /// Sends a request; the body on 200, else why not.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<Vec<u8>, Refusal> {
        let response = request
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| Refusal::Unreachable(reason(&e)))?;
        let status = response.status().as_u16();
        let body = read_body(response, MAX_BODY_BYTES).await?;
        if status == 200 {
            return Ok(body.to_vec());
        }
        let message = serde_json::from_slice::<Message>(&body)
            .map(|m| m.message)
            .unwrap_or_default();
        Err(Refusal::Status(status, message))
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(&self, path: &str) -> Result<T, Refusal> {
        let body = self
            .send(self.request(reqwest::Method::GET, path), REQUEST_TIMEOUT)
            .await?;
        serde_json::from_slice(&body).map_err(|e| Refusal::Garbled(e.to_string()))
    }

    pub async fn info(&self) -> Result<ControllerInfo, Refusal> {
        self.get_json("controller/info").await
    }

    pub async fn vms(&self) -> Result<Vec<Vm>, Refusal> {
        self.get_json("vms").await
    }

    /// A VM, or `None` when the controller has none of that name.
    pub async fn vm(&self, name: &str) -> Result<Option<Vm>, Refusal> {
        match self.get_json(&format!("vms/{name}")).await {
            Ok(vm) => Ok(Some(vm)),
            Err(Refusal::Status(404, _)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn workers(&self) -> Result<Vec<Worker>, Refusal> {
        self.get_json("workers").await
    }

    /// The VM's last `limit` events, oldest first.
    pub async fn events(&self, name: &str, limit: usize) -> Result<Vec<Event>, Refusal> {
        let mut events: Vec<Event> = self
            .get_json(&format!("vms/{name}/events?order=desc&limit={limit}"))
            .await?;
        events.reverse();
        Ok(events)
    }

    pub async fn create(&self, vm: &NewVm) -> Result<Vm, Refusal> {
        let json = serde_json::to_vec(vm).map_err(|e| Refusal::Garbled(e.to_string()))?;
        let request = self
            .request(reqwest::Method::POST, "vms")
            .header("Content-Type", "application/json")
            .body(json);
        let body = self.send(request, REQUEST_TIMEOUT).await?;
        serde_json::from_slice(&body).map_err(|e| Refusal::Garbled(e.to_string()))
    }

    /// Deletes a VM; one that is gone already is fine.
    pub async fn delete(&self, name: &str) -> Result<(), Refusal> {
        match self
            .send(
                self.request(reqwest::Method::DELETE, &format!("vms/{name}")),
                REQUEST_TIMEOUT,
            )
            .await
        {
            Ok(_) | Err(Refusal::Status(404, _)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The VM's address as its worker sees it, waiting up to `wait` for one.
    pub async fn ip(&self, name: &str, wait: Duration) -> Result<String, Refusal> {
        let secs = wait.as_secs().clamp(1, 65535);
        let body = self
            .send(
                self.request(reqwest::Method::GET, &format!("vms/{name}/ip?wait={secs}")),
                Duration::from_secs(secs) + REQUEST_TIMEOUT,
            )
            .await?;
        serde_json::from_slice::<Ip>(&body)
            .map(|ip| ip.ip)
            .map_err(|e| Refusal::Garbled(e.to_string()))
    }

    /// A refusal in words, for what tartlab was doing (`creating dev-master`), with what
    /// to do about it.
    pub fn explain(&self, doing: &str, refusal: Refusal) -> ProviderError {
        let url = self.url();
        let account = &self.credentials.account;
        match refusal {
            Refusal::Unreachable(why) if why.contains("certificate") => ProviderError::new(
                format!("the Orchard controller at {url} is not trusted while {doing}: {why}"),
                "a controller that made its own certificate is trusted by pinning it: `certificate: controller.crt` (from its data directory) under `provider.orchard`, or the orchard context that has it",
            ),
            Refusal::Unreachable(why) => ProviderError::new(
                format!("cannot reach the Orchard controller at {url} while {doing}: {why}"),
                "check the URL and that the controller runs (`curl URL/v1/` answers), then try again",
            ),
            Refusal::Status(401, message) if message.contains("roles must be present") => {
                ProviderError::new(
                    format!("the Orchard controller at {url} refused {doing}: the service account {account} lacks a role ({message})"),
                    format!("give {account} the roles compute:read and compute:write (an admin: `orchard create service-account` or PUT /v1/service-accounts/{account}), or use an account that has them"),
                )
            }
            Refusal::Status(401, _) => ProviderError::new(
                format!("the Orchard controller at {url} refused the credentials of service account {account} while {doing}: the name or the token is wrong"),
                format!("check them ({}); an admin lists accounts with `orchard list service-accounts`", self.credentials.from),
            ),
            Refusal::Status(status, message) => {
                let said = if message.is_empty() {
                    String::new()
                } else {
                    format!(": {message}")
                };
                let hint = match status {
                    404 => "it is not on the controller (any more); `tartlab status` shows what is",
                    409 => "a VM of that name exists on the controller; `tartlab status` says whether it is the lab's",
                    412 | 400 => "the controller refused the request as given; check the lab file's values for this node",
                    503 => "the controller cannot reach the VM's worker right now; check that the worker runs, then try again",
                    _ => "check the controller's log; then try again",
                };
                ProviderError::new(
                    format!("the Orchard controller at {url} answered {status} while {doing}{said}"),
                    hint,
                )
            }
            Refusal::TooLarge => ProviderError::new(
                format!("the Orchard controller at {url} answered with more than {} MiB while {doing}, more than tartlab reads of one answer", MAX_BODY_BYTES / (1024 * 1024)),
                "check that the URL is an Orchard controller's (and not a proxy's or another server's); nothing more of that answer was read",
            ),
            Refusal::Garbled(why) => ProviderError::new(
                format!("the Orchard controller at {url} answered in a form tartlab does not know while {doing}: {why}"),
                "check that the URL is an Orchard controller's, of version 0.55 or newer",
            ),
        }
    }
}

/// A response's body, at most `limit` bytes of it: a larger one (by its Content-Length, or
/// as it comes) is `TooLarge`, and the rest is not read.
pub async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, Refusal> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(Refusal::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Refusal::Unreachable(reason(&e)))?
    {
        if body.len() + chunk.len() > limit {
            return Err(Refusal::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A transport error's cause, the innermost first words (reqwest's own words name only the
/// URL: "error sending request for url").
fn reason(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    let mut last = e.to_string();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    if e.is_timeout() {
        format!("no answer in time ({last})")
    } else {
        last
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{controller, Answer};
    use super::*;

    /// A JSON list of (at most 1001) empty objects, padded to `length` bytes.
    fn list_of(length: usize) -> Vec<u8> {
        let mut body = String::from("[");
        while body.len() + 6 <= length && body.len() < 3000 {
            body.push_str("{},");
        }
        body.push_str("{}");
        body.push_str(&" ".repeat(length - body.len() - 1));
        body.push(']');
        body.into_bytes()
    }

    /// A controller that answers every request with a list `length` bytes long, its length
    /// said in a Content-Length or not (chunked).
    fn answering(chunked: bool, length: usize) -> Controller {
        let body = list_of(length);
        controller(move |_| Answer {
            status: 200,
            body: body.clone(),
            chunked,
        })
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn an_answer_over_the_bound_is_an_error_in_words_whether_its_length_is_said_or_not() {
        for chunked in [false, true] {
            let controller = answering(chunked, MAX_BODY_BYTES + 64 * 1024);
            let refusal = runtime().block_on(controller.vms());
            assert!(
                matches!(refusal, Err(Refusal::TooLarge)),
                "chunked {chunked}: {:?}",
                refusal.map(|vms| vms.len())
            );
        }
        let controller = answering(false, 10);
        let error = controller.explain("listing the VMs", Refusal::TooLarge);
        assert!(
            error
                .message
                .contains("answered with more than 4 MiB while listing the VMs"),
            "{}",
            error.message
        );
    }

    #[test]
    fn an_answer_within_the_bound_is_read_whole() {
        let controller = answering(true, MAX_BODY_BYTES);
        let vms = runtime().block_on(controller.vms()).unwrap();
        assert_eq!(vms.len(), 1001);
    }

    #[test]
    fn a_vm_is_read_with_unknown_fields_and_hyphenated_keys() {
        let json = r#"{"name":"web-1","uid":"0b6f","status":"running","status_message":"VM started",
            "worker":"mac-1","cpu":4,"memory":8192,"net-bridged":"","endpoints":[],"conditions":[{"type":"scheduled","state":"true"}],
            "restarted_at":"0001-01-01T00:00:00Z","labels":{"zone":"a"}}"#;
        let vm: Vm = serde_json::from_str(json).unwrap();
        assert!(vm.is_running());
        assert_eq!(vm.worker, "mac-1");
        assert_eq!(vm.labels["zone"], "a");
    }

    #[test]
    fn a_new_vm_writes_orchards_keys_and_leaves_out_unset_networks() {
        let vm = NewVm {
            name: "dev-master".into(),
            image: "ghcr.io/cirruslabs/ubuntu:latest".into(),
            cpu: 2,
            memory: 2048,
            disk_size: None,
            os: "linux",
            arch: "arm64",
            runtime: "tart",
            headless: true,
            net_softnet: true,
            net_softnet_allow: vec!["0.0.0.0/0".into()],
            net_softnet_block: vec![],
            net_bridged: String::new(),
            labels: BTreeMap::new(),
            resources: BTreeMap::new(),
            username: "admin".into(),
            password: "admin".into(),
            restart_policy: "Never",
        };
        let json = serde_json::to_value(&vm).unwrap();
        assert_eq!(json["netSoftnet"], true);
        assert_eq!(json["netSoftnetAllow"][0], "0.0.0.0/0");
        assert!(json.get("net-bridged").is_none());
        assert!(json.get("diskSize").is_none());
        assert_eq!(json["restart_policy"], "Never");
    }
}
