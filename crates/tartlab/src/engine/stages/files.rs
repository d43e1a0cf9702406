//! The lab's files on a node: each file whose content, mode or owner changed is uploaded over
//! SFTP into a new private directory (0700, each file 0600) in the login user's home, then
//! all are put in place by one root command (`install` with owner, group and mode to a new
//! temporary file beside `DEST`, renamed over `DEST`, so each file appears whole), which
//! removes the staging directory however it ends. Root never writes through a symbolic link
//! a guest user could have planted on the way to `DEST`.

use super::{command_failure, show_note, NodeRun, NodeStage};
use crate::engine::events::{Provisioned, Stage};
use crate::engine::inputs;
use crate::engine::remote::{as_root_locked, DONE_PREFIX};
use crate::engine::{Context, Failure, WRITABLE};
use crate::guest::runner::{Command, GuestSession};
use crate::guest::ssh::{Input, Reply, Stream};
use crate::guest::transfer;
use crate::provider::BoxFuture;

/// Arguments: the staging directory, then per file `STAGED DEST MODE OWNER GROUP`.
const PLACE_FILES: &str = r#"set -euo pipefail
stage=$1
shift
trap 'rm -rf -- "$stage"' EXIT
# A link on the way to a destination is followed only when root owns it (as /bin on merged
# /usr systems): a user's link could send root's write anywhere.
no_user_links() {
  local path= part
  IFS=/ read -ra parts <<< "${1#/}"
  for part in "${parts[@]}"; do
    [ -n "$part" ] || continue
    path=$path/$part
    if [ -L "$path" ] && [ "$(stat -c %u -- "$path")" != 0 ]; then
      echo "refusing to write $dest: $path is a symbolic link owned by $(stat -c %U -- "$path")" >&2
      exit 1
    fi
  done
}
while [ $# -gt 0 ]; do
  src=$1 dest=$2 mode=$3 owner=$4 group=$5
  shift 5
  dir=$(dirname -- "$dest")
  no_user_links "$dir"
  mkdir -p -- "$dir"
  tmp=$(mktemp -- "$dir/.tartlab.XXXXXXXX")
  install -m "$mode" -o "$owner" -g "$group" -- "$src" "$tmp"
  mv -f -- "$tmp" "$dest"
  printf 'tartlab-done: %s\n' "$dest"
done
"#;

pub struct Files;

impl NodeStage for Files {
    fn run<'a>(
        &'a self,
        ctx: &'a Context,
        run: &'a mut NodeRun,
    ) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            if !run.provisioning(ctx) {
                return Ok(());
            }
            let vm = run.node.vm_name.clone();
            let applied = ctx.store.vm(&vm).unwrap_or_default().applied;
            let uploads: Vec<inputs::Upload> = inputs::uploads(&ctx.lab, &run.node)
                .map_err(|e| Failure::new(Stage::Files, e.to_string(), e.hint()))?
                .into_iter()
                .filter(|u| applied.get(&inputs::file_key(&u.spec.dest)) != Some(&u.hash))
                .collect();
            if uploads.is_empty() {
                return Ok(());
            }
            run.hold_slot(ctx).await;
            let guest = run.guest(ctx).await?;
            ctx.reporter
                .started(&vm, Stage::Files, &format!("{} file(s)", uploads.len()));
            let args = stage(&guest, &vm, &uploads).await?;
            let (placed, result) = place(ctx, &guest, &vm, &uploads, &args).await;
            if !placed.is_empty() {
                run.provisioned.push(Provisioned::Files(placed));
            }
            result
        })
    }
}

/// Uploads each file into the login user's home; returns the arguments of `PLACE_FILES`.
async fn stage(
    guest: &GuestSession,
    vm: &str,
    uploads: &[inputs::Upload<'_>],
) -> Result<Vec<String>, Failure> {
    let sftp_problem = |e: String| {
        Failure::new(
            Stage::Files,
            format!(
                "SFTP: {}",
                crate::text::printable(&e, crate::text::QUOTED_LINE)
            ),
            "the image's sshd needs its sftp subsystem",
        )
    };
    let sftp = guest
        .connection()
        .sftp()
        .await
        .map_err(|e| sftp_problem(e.to_string()))?;
    let home = sftp
        .canonicalize(".")
        .await
        .map_err(|e| sftp_problem(e.to_string()))?;
    let stage = format!("{home}/.tartlab-upload.{:016x}", crate::files::random_u64());
    transfer::make_private_dir(&sftp, &stage)
        .await
        .map_err(|e| sftp_problem(format!("{stage}: {e}")))?;
    let mut args: Vec<String> = vec![stage.clone()];
    for (i, upload) in uploads.iter().enumerate() {
        let staged = format!("{stage}/{i}");
        transfer::put_new(&sftp, &staged, &upload.content, 0o600)
            .await
            .map_err(|e| {
                Failure::new(
                    Stage::Files,
                    format!(
                        "uploading {} to {vm}: {}",
                        upload.spec.src,
                        crate::text::printable(&e.to_string(), crate::text::QUOTED_LINE)
                    ),
                    format!("check the free space on {vm}"),
                )
            })?;
        let owner = upload.spec.owner.clone().unwrap_or_else(|| "root".into());
        let (user, group) = owner.split_once(':').unwrap_or((&owner, &owner));
        let mode = upload.spec.mode.clone().unwrap_or_else(|| "0644".into());
        args.extend([
            staged,
            upload.spec.dest.clone(),
            mode,
            user.into(),
            group.into(),
        ]);
    }
    let _ = sftp.close().await;
    Ok(args)
}

/// Puts the staged files in place as root, recording each as it lands; returns the
/// destinations placed, and how the whole went.
async fn place(
    ctx: &Context,
    guest: &GuestSession,
    vm: &str,
    uploads: &[inputs::Upload<'_>],
    args: &[String],
) -> (Vec<String>, Result<(), Failure>) {
    let what = "placing the files";
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let command = as_root_locked(what, PLACE_FILES, &words);
    let mut placed = Vec::new();
    let mut unrecorded = None;
    let mut hear = |stream: Stream, line: &str| {
        match (stream, line.strip_prefix(DONE_PREFIX)) {
            (Stream::Stdout, Some(dest)) => {
                let Some(upload) = uploads.iter().find(|u| u.spec.dest == dest) else {
                    return Reply::Nothing;
                };
                let recorded = ctx.store.update_vm(vm, |o| {
                    o.applied
                        .insert(inputs::file_key(dest), upload.hash.clone());
                });
                match recorded {
                    Ok(()) => placed.push(dest.to_string()),
                    Err(e) => unrecorded = Some(e),
                }
            }
            (Stream::Stderr, _) => {
                show_note(ctx, vm, Stage::Files, what, line);
            }
            _ => {}
        }
        Reply::Nothing
    };
    let result = guest
        .run(
            Command {
                what,
                line: &command,
                shown: &command,
                input: Input::Given(None),
            },
            &mut hear,
        )
        .await;
    let result = match (unrecorded, result) {
        (Some(e), _) => Err(Failure::new(Stage::Files, e, WRITABLE)),
        (None, result) => result
            .map(|_| ())
            .map_err(|e| command_failure(ctx, vm, Stage::Files, what, e)),
    };
    (placed, result)
}
