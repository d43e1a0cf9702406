//! Conformance: tart-sim run as a user runs tart, checked against shared/tart-reference.md
//! command by command and error by error (stdout, stderr, exit code). Tests that create
//! VMs need root (image setup uses namespaces); they call `require_root`.

mod common;

use common::{require_root, Sim};

const USAGE_RUN: &str =
    "Usage: tart run [<options>] <name>\n  See 'tart run --help' for more information.\n";

#[test]
fn version_is_2_31_0_on_stdout() {
    let out = Sim::new().tart(&["--version"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "2.31.0\n", "")
    );
}

#[test]
fn no_arguments_prints_help_listing_subcommands_in_tart_order() {
    let out = Sim::new().tart(&[]);
    assert_eq!(out.code, 0);
    let order: Vec<usize> = [
        "create", "clone", "run", "set", "get", "list", "ip", "exec", "pull", "stop", "delete",
    ]
    .iter()
    .map(|c| {
        out.stdout
            .find(&format!("\n  {c} "))
            .unwrap_or_else(|| panic!("{c} missing"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{}", out.stdout);
}

#[test]
fn unknown_subcommand_is_an_unexpected_argument_at_the_root() {
    let out = Sim::new().tart(&["frobnicate"]);
    assert_eq!(out.code, 64);
    assert_eq!(
        out.stderr,
        "Error: Unexpected argument 'frobnicate'\nUsage: tart <subcommand>\n  See 'tart --help' for more information.\n"
    );
}

#[test]
fn tart_commands_the_simulator_lacks_say_so_with_exit_1() {
    let out = Sim::new().tart(&["create", "--linux", "x"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("not supported by the simulator"),
        "{}",
        out.stderr
    );
}

#[test]
fn run_help_lists_tart_options_and_no_config_option() {
    let out = Sim::new().tart(&["run", "--help"]);
    assert_eq!(out.code, 0);
    for opt in [
        "--no-graphics",
        "--net-softnet",
        "--net-softnet-allow <comma-separated CIDRs>",
        "--net-bridged <interface name>",
        "--disk <path[:options]>",
        "--dir <[name:]path[:options]>",
        "--net-host",
        "--root-disk-opts <options>",
    ] {
        assert!(
            out.stdout.contains(opt),
            "{opt} missing from:\n{}",
            out.stdout
        );
    }
    assert!(!out.stdout.contains("--config"));
    assert!(out.stdout.contains("USAGE: tart run [<options>] <name>"));
}

#[test]
fn run_of_a_missing_vm_exits_1_with_error_prefix_even_with_a_bad_option() {
    let sim = Sim::new();
    for args in [vec!["run", "missing"], vec!["run", "missing", "--bogus"]] {
        let out = sim.tart(&args);
        assert_eq!(out.code, 1, "{args:?}");
        assert_eq!(
            out.stderr,
            "Error: the specified VM \"missing\" does not exist\n"
        );
    }
}

#[test]
fn other_commands_on_a_missing_vm_exit_2_without_prefix() {
    let sim = Sim::new();
    for args in [
        vec!["ip", "missing"],
        vec!["get", "missing"],
        vec!["set", "missing", "--cpu", "2"],
        vec!["stop", "missing"],
        vec!["exec", "missing", "true"],
        vec!["delete", "missing"],
        vec!["clone", "missing", "copy"],
    ] {
        let out = sim.tart(&args);
        assert_eq!(out.code, 2, "{args:?}");
        assert_eq!(
            out.stderr, "the specified VM \"missing\" does not exist\n",
            "{args:?}"
        );
    }
}

#[test]
fn seed_bug_001_config_option_is_unknown_exit_64() {
    require_root();
    let sim = Sim::new();
    sim.clone_image("dev-master");
    let out = sim.tart(&[
        "run",
        "dev-master",
        "--config",
        "user-data=./cloud-init-configs/dev-master.yaml",
        "--no-graphics",
    ]);
    assert_eq!(out.code, 64);
    assert_eq!(
        out.stderr,
        format!("Error: Unknown option '--config'\n{USAGE_RUN}")
    );
    let out = sim.tart(&["run", "dev-master", "--no-graphic"]);
    assert_eq!(out.code, 64);
    assert_eq!(
        out.stderr,
        format!("Error: Unknown option '--no-graphic'. Did you mean '--no-graphics'?\n{USAGE_RUN}")
    );
    let out = sim.tart(&["run", "dev-master", "--no-graphics=yes"]);
    assert_eq!(out.code, 64);
    assert!(out.stderr.starts_with(
        "Error: The option '--no-graphics' does not take any value, but 'yes' was specified.\n"
    ));
    let out = sim.tart(&["run", "dev-master", "--net-softnet", "--net-host"]);
    assert_eq!(out.code, 64);
    assert!(out.stderr.starts_with(
        "Error: --net-bridged, --net-softnet and --net-host are mutually exclusive\n"
    ));
    let out = sim.tart(&["run", "dev-master", "--net-bridged=en9"]);
    assert_eq!(out.code, 64);
    assert_eq!(
        out.stderr,
        "Error: no bridge interfaces matched \"[\"en9\"]\", available interfaces: [\"en0 (or \\\"Ethernet\\\")\"]\nUsage: tart <subcommand>\n  See 'tart --help' for more information.\n"
    );
}

#[test]
fn bad_missing_and_invalid_values_name_the_option_with_help() {
    let sim = Sim::new();
    let out = sim.tart(&["ip", "vm", "--wait", "abc"]);
    assert_eq!(out.code, 64);
    assert_eq!(
        out.stderr,
        "Error: The value 'abc' is invalid for '--wait <wait>'\nHelp:  --wait <wait>  Number of seconds to wait for a potential VM booting\nUsage: tart ip <name> [--wait <wait>] [--resolver <resolver>]\n  See 'tart ip --help' for more information.\n"
    );
    let out = sim.tart(&["ip", "vm", "--resolver=magic"]);
    assert!(out.stderr.starts_with("Error: The value 'magic' is invalid for '--resolver <resolver>'. Please provide one of 'dhcp', 'arp' or 'agent'.\n"));
    let out = sim.tart(&["list", "--format", "yaml"]);
    assert!(out.stderr.starts_with("Error: The value 'yaml' is invalid for '--format <format>'. Please provide one of 'text' and 'json'.\n"));
    let out = sim.tart(&["ip", "vm", "--wait"]);
    assert_eq!(out.code, 64);
    assert!(out.stderr.starts_with(
        "Error: Missing value for '--wait <wait>'\nHelp:  --wait <wait>  Number of seconds"
    ));
    let out = sim.tart(&["ip"]);
    assert_eq!(out.code, 64);
    assert!(out
        .stderr
        .starts_with("Error: Missing expected argument '<name>'\nHelp:  <name>  VM name\n"));
    let out = sim.tart(&["get", "a", "b", "c"]);
    assert_eq!(out.code, 64);
    assert!(out
        .stderr
        .starts_with("Error: 2 unexpected arguments: 'b', 'c'\n"));
}

#[test]
fn list_unknown_option_matches_the_reference_scenario() {
    let out = Sim::new().tart(&["list", "--foo"]);
    assert_eq!(out.code, 64);
    assert_eq!(
        out.stderr,
        "Error: Unknown option '--foo'\nUsage: tart list [--source <source>] [--format <format>] [--quiet]\n  See 'tart list --help' for more information.\n"
    );
}

#[test]
fn empty_list_in_each_format() {
    let sim = Sim::new();
    assert_eq!(sim.ok(&["list"]), "\n");
    assert_eq!(sim.ok(&["list", "-q"]), "");
    assert_eq!(sim.ok(&["list", "--format", "json"]), "[\n\n]\n");
    let out = sim.tart(&["list", "--source", "remote"]);
    assert_eq!(out.code, 64);
    assert!(out
        .stderr
        .starts_with("Error: 'remote' is not a valid <source>\n"));
}

#[test]
fn pull_prints_tart_progress_then_reports_the_cache_hit() {
    require_root();
    let sim = Sim::new();
    let first = sim.ok(&["pull", "ghcr.io/cirruslabs/ubuntu:latest"]);
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(lines[0], "pulling ghcr.io/cirruslabs/ubuntu:latest...");
    assert_eq!(lines[1], "pulling manifest...");
    assert!(lines[2].starts_with("pulling disk (") && lines[2].ends_with(" GB compressed)..."));
    assert!(lines.contains(&"100%"));
    assert_eq!(lines.last(), Some(&"pulling NVRAM..."));
    let second = sim.ok(&["pull", "ghcr.io/cirruslabs/ubuntu:latest"]);
    assert!(
        second
            .lines()
            .nth(2)
            .unwrap()
            .ends_with("image is already cached and linked!"),
        "{second}"
    );
    let unknown = sim.tart(&["pull", "ghcr.io/cirruslabs/nosuchimage:latest"]);
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.starts_with("Error: "), "{}", unknown.stderr);
    sim.clone_image("local");
    assert_eq!(
        sim.ok(&["pull", "local"]),
        "\"local\" is a local image, nothing to pull here!\n"
    );
}

/// A tag the registry does not have: tart prints the registry's 404 as Swift writes the
/// `RegistryError` value (it has no description), exit 1, whether `pull` or `clone` pulls.
#[test]
fn a_missing_image_is_the_registry_s_404_as_tart_prints_it() {
    require_root();
    let sim = Sim::new();
    let stderr = r#"Error: UnexpectedHTTPStatusCode(when: "pulling manifest", code: 404, details: "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"manifest unknown\"}]}")
"#;
    let image = "ghcr.io/cirruslabs/ubuntu:24.4";
    let pulled = sim.tart(&["pull", image]);
    assert_eq!(pulled.code, 1);
    assert_eq!(pulled.stderr, stderr);
    assert_eq!(
        pulled.stdout,
        format!("pulling {image}...\npulling manifest...\n")
    );
    let cloned = sim.tart(&["clone", image, "vm"]);
    assert_eq!(cloned.code, 1);
    assert_eq!(cloned.stderr, stderr);
    assert_eq!(cloned.stdout, "pulling manifest...\n");
    assert_eq!(sim.ok(&["list", "--quiet"]), "", "nothing was made");
}

#[test]
fn list_shows_local_then_oci_entries_with_tart_columns_and_json() {
    require_root();
    let sim = Sim::new();
    sim.clone_image("b-vm");
    sim.clone_image("a-vm");
    let text = sim.ok(&["list"]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("Source Name"));
    assert!(
        lines[0].ends_with("State  "),
        "header keeps its padding: {:?}",
        lines[0]
    );
    assert!(lines[1].starts_with("local  a-vm "));
    assert!(lines[2].starts_with("local  b-vm "));
    assert!(lines[3].starts_with("OCI    ghcr.io/cirruslabs/ubuntu:latest "));
    assert!(lines[4].starts_with("OCI    ghcr.io/cirruslabs/ubuntu@sha256:"));
    assert!(lines[1].contains(" 20 ") && lines[1].ends_with(" stopped"));
    let json = sim.ok(&["list", "--format", "json", "--source", "local"]);
    assert!(json.contains("\"Name\" : \"a-vm\""), "{json}");
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed[0]["Disk"], 20);
    assert_eq!(parsed[0]["Running"], false);
    assert_eq!(parsed[0]["State"], "stopped");
    assert!(parsed[0]["Accessed"].as_str().unwrap().ends_with('Z'));
    let oci = sim.ok(&["list", "--format", "json", "--source", "oci"]);
    assert!(
        oci.contains("ghcr.io\\/cirruslabs\\/ubuntu:latest"),
        "slashes escaped: {oci}"
    );
    assert_eq!(sim.ok(&["list", "-q", "--source", "local"]), "a-vm\nb-vm\n");
}

fn mac_of(sim: &Sim, vm: &str) -> String {
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sim.vm_dir(vm).join("config.json")).unwrap())
            .unwrap();
    config["macAddress"].as_str().unwrap().to_string()
}

#[test]
fn clone_keeps_the_image_mac_once_then_randomizes_and_overwrites_silently() {
    require_root();
    let sim = Sim::new();
    sim.clone_image("first");
    sim.clone_image("second");
    let image_mac = "7e:1c:f2:4a:78:30";
    assert_eq!(mac_of(&sim, "first"), image_mac);
    assert_ne!(mac_of(&sim, "second"), image_mac);
    std::fs::write(sim.vm_dir("second").join("marker"), "x").unwrap();
    let out = sim.tart(&["clone", "first", "second"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (0, "", "")
    );
    assert!(
        !sim.vm_dir("second").join("marker").exists(),
        "clone replaced the VM"
    );
    let out = sim.tart(&["clone", "first", "a/b"]);
    assert_eq!(out.code, 64);
    assert!(out
        .stderr
        .starts_with("Error: <new-name> should be a local name\n"));
}

#[test]
fn a_clone_of_a_local_vm_always_gets_a_new_mac_and_keeps_the_guest_disk() {
    require_root();
    let sim = Sim::new();
    sim.clone_image("source");
    sim.ok(&["set", "source", "--random-mac"]);
    std::fs::write(sim.vm_dir("source").join("guest-marker"), "x").unwrap();
    let source_mac = mac_of(&sim, "source");
    // The source holds its MAC, so every clone of it gets a new one (reference 7.1).
    sim.ok(&["clone", "source", "copy"]);
    let copy_mac = mac_of(&sim, "copy");
    assert_ne!(copy_mac, source_mac);
    sim.ok(&["clone", "copy", "copy-of-copy"]);
    assert_ne!(mac_of(&sim, "copy-of-copy"), copy_mac);
    assert_eq!(
        mac_of(&sim, "source"),
        source_mac,
        "the source is unchanged"
    );
    let disk = |vm: &str| {
        std::fs::metadata(sim.vm_dir(vm).join("disk.img"))
            .unwrap()
            .len()
    };
    assert_eq!(disk("copy"), disk("source"));
}

#[test]
fn run_reads_the_mac_from_config_json_so_a_mac_written_back_gets_its_old_lease() {
    require_root();
    let sim = Sim::new();
    let (mut first, ip) = sim.boot("vm");
    let mac = mac_of(&sim, "vm");
    sim.ok(&["stop", "vm"]);
    let _ = common::wait_exit(&mut first, 30);
    // Cloned back under the name with a new MAC, then the old MAC written into config.json
    // by hand, as a tool restoring a VM does: `tart run` must take that one.
    sim.ok(&["clone", "vm", "saved"]);
    sim.ok(&["delete", "vm"]);
    sim.ok(&["clone", "saved", "vm"]);
    assert_ne!(mac_of(&sim, "vm"), mac);
    let path = sim.vm_dir("vm").join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["macAddress"] = serde_json::Value::String(mac.clone());
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let _second = sim.start("vm");
    let again = sim.ok(&["ip", "vm", "--wait", "30"]).trim().to_string();
    assert_eq!(again, ip, "the same MAC gets the same DHCP lease");
    assert_eq!(mac_of(&sim, "vm"), mac);
}

#[test]
fn set_changes_resources_grows_disks_and_refuses_to_shrink() {
    require_root();
    let sim = Sim::new();
    sim.clone_image("vm");
    let before = mac_of(&sim, "vm");
    sim.ok(&[
        "set",
        "vm",
        "--cpu",
        "2",
        "--memory",
        "2048",
        "--disk-size",
        "30",
        "--random-mac",
    ]);
    assert_ne!(mac_of(&sim, "vm"), before);
    let get = sim.ok(&["get", "vm"]);
    let lines: Vec<&str> = get.lines().collect();
    assert_eq!(
        lines[0],
        "OS    CPU Memory Disk DiskFormat Size  Display  State  "
    );
    assert!(
        lines[1].starts_with("linux 2   2048   30   raw        "),
        "{get}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&sim.ok(&["get", "vm", "--format", "json"])).unwrap();
    assert_eq!(json["Memory"], 2048);
    assert!(json["Size"].is_string());
    let out = sim.tart(&["set", "vm", "--disk-size", "20"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "new disk size of 20 GB should be larger than the current disk size of 30 GB\n"
    );
}

#[test]
fn rename_errors_use_the_root_usage() {
    require_root();
    let sim = Sim::new();
    sim.clone_image("a");
    sim.clone_image("b");
    let out = sim.tart(&["rename", "a", "b"]);
    assert_eq!(out.code, 64);
    assert_eq!(out.stderr, "Error: failed to rename VM a, target VM b already exists, delete it first!\nUsage: tart <subcommand>\n  See 'tart --help' for more information.\n");
    let out = sim.tart(&["rename", "zz", "c"]);
    assert_eq!(out.code, 64);
    assert!(out
        .stderr
        .starts_with("Error: failed to rename a non-existent local VM: zz\n"));
    sim.ok(&["rename", "a", "c"]);
    assert_eq!(sim.ok(&["list", "-q", "--source", "local"]), "b\nc\n");
}

#[test]
fn stop_of_a_stopped_vm_and_ip_without_lease() {
    require_root();
    let sim = Sim::new();
    sim.clone_image("vm");
    let out = sim.tart(&["stop", "vm"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (2, "VM \"vm\" is not running\n")
    );
    let out = sim.tart(&["exec", "vm", "true"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (2, "VM \"vm\" is not running\n")
    );
    let out = sim.tart(&["ip", "vm"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (1, "no IP address found, is your VM running?\n")
    );
    let out = sim.tart(&["ip", "vm", "--resolver", "agent"]);
    assert_eq!(out.stderr, "no IP address found, is your VM running? (also make sure that Guest agent for Tart is running inside of a VM)\n");
    sim.ok(&["delete", "vm"]);
    assert_eq!(sim.ok(&["list", "-q", "--source", "local"]), "");
}

#[test]
fn a_tart_home_inside_an_overlaid_directory_is_refused_with_the_reason() {
    require_root();
    let home = tempfile::Builder::new()
        .prefix("tart-sim-test")
        .tempdir_in("/var/tmp")
        .unwrap();
    let sim = Sim::new();
    let out = sim
        .command(&["clone", "ghcr.io/cirruslabs/ubuntu:latest", "vm"])
        .env("TART_HOME", home.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("TART_HOME must not be under /var"),
        "{stderr}"
    );
}

#[test]
fn fqn_gives_a_cached_image_its_digest_and_leaves_other_names_alone() {
    // tart 2.31.0 Sources/tart/Commands/FQN.swift and VMStorageOCI.digest: what Orchard's
    // worker runs after each clone to fill the VM's image_fqn.
    require_root();
    let sim = Sim::new();
    let missing = sim.tart(&["fqn", "ghcr.io/cirruslabs/ubuntu:latest"]);
    assert_eq!(
        (missing.code, missing.stdout.as_str(), missing.stderr.as_str()),
        (
            1,
            "",
            "OCI storage error: ghcr.io/cirruslabs/ubuntu:latest is not a digest and doesn't point to a digest\n"
        )
    );
    sim.ok(&["pull", "ghcr.io/cirruslabs/ubuntu:latest"]);
    let fqn = sim.ok(&["fqn", "ghcr.io/cirruslabs/ubuntu:latest"]);
    let digest = fqn
        .strip_prefix("ghcr.io/cirruslabs/ubuntu@sha256:")
        .and_then(|d| d.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("{fqn:?}"));
    assert!(
        digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit()),
        "{fqn:?}"
    );
    // The name without a tag is `:latest`; another tag of the same image has its digest;
    // the digest form is its own answer; `tart list` shows the same digest entry.
    assert_eq!(sim.ok(&["fqn", "ghcr.io/cirruslabs/ubuntu"]), fqn);
    sim.ok(&["pull", "ghcr.io/cirruslabs/ubuntu:24.04"]);
    assert_eq!(sim.ok(&["fqn", "ghcr.io/cirruslabs/ubuntu:24.04"]), fqn);
    assert_eq!(sim.ok(&["fqn", fqn.trim()]), fqn);
    assert!(sim.ok(&["list", "--source", "oci"]).contains(fqn.trim()));
    // A local name, existing or not, comes back unchanged (not a remote name: no error).
    sim.clone_image("local-vm");
    assert_eq!(sim.ok(&["fqn", "local-vm"]), "local-vm\n");
    assert_eq!(sim.ok(&["fqn", "no-such-vm"]), "no-such-vm\n");
    let usage = sim.tart(&["fqn"]);
    assert_eq!(usage.code, 64);
    assert!(
        usage
            .stderr
            .starts_with("Error: Missing expected argument '<name>'"),
        "{}",
        usage.stderr
    );
    // Hidden from help, as tart registers it with shouldDisplay: false.
    assert!(!sim.ok(&["--help"]).contains("fqn"));
}
