//! tart 2.31's subcommands, arguments and options, with their help texts and usage
//! synopses, as tart's `Sources/tart/Commands/*.swift` declare them (crates/tart-sim/README.md
//! lists what is simulated): one function per subcommand.

use crate::args::{ArgSpec, Arity, CommandSpec, OptSpec, ValueKind};

/// Subcommands in the order `tart --help` lists them (`fqn` is hidden but works).
pub const SUBCOMMANDS: &[(&str, &str)] = &[
    ("create", "Create a VM"),
    ("clone", "Clone a VM"),
    ("run", "Run a VM"),
    ("set", "Modify VM's configuration"),
    ("get", "Get a VM's configuration"),
    ("list", "List created VMs"),
    ("login", "Login to a registry"),
    ("logout", "Logout from a registry"),
    ("ip", "Get VM's IP address"),
    ("exec", "Execute a command in a running VM"),
    ("pull", "Pull a VM from a registry"),
    ("push", "Push a VM to a registry"),
    ("import", "Import VM from a compressed .tvm file"),
    ("export", "Export VM to a compressed .tvm file"),
    ("prune", "Prune OCI and IPSW caches or local VMs"),
    ("rename", "Rename a local VM"),
    ("stop", "Stop a VM"),
    ("delete", "Delete a VM"),
    ("suspend", "Suspend a VM"),
];

fn name_arg() -> ArgSpec {
    ArgSpec {
        name: "name",
        help: "VM name",
        arity: Arity::One,
    }
}

const FORMAT: &[&str] = &["text", "json"];

/// The spec of a subcommand the simulator implements, or `None`.
pub fn command(name: &str) -> Option<CommandSpec> {
    Some(match name {
        "clone" => clone_spec(),
        "run" => run_spec(),
        "set" => set_spec(),
        "get" => get_spec(),
        "list" => list_spec(),
        "ip" => ip_spec(),
        "exec" => exec_spec(),
        "pull" => pull_spec(),
        "rename" => rename_spec(),
        "stop" => stop_spec(),
        "delete" => delete_spec(),
        "fqn" => fqn_spec(),
        _ => return None,
    })
}

fn clone_spec() -> CommandSpec {
    CommandSpec {
        name: "clone",
        abstract_text: "Clone a VM",
        discussion: "Creates a local virtual machine by cloning either a remote or another local virtual machine.",
        usage: "clone <source-name> <new-name> [--insecure] [--concurrency <concurrency>] [--prune-limit <n>]",
        args: vec![
            ArgSpec { name: "source-name", help: "source VM name", arity: Arity::One },
            ArgSpec { name: "new-name", help: "new VM name", arity: Arity::One },
        ],
        opts: vec![
            OptSpec::flag("insecure", "connect to the OCI registry via insecure HTTP protocol"),
            OptSpec::value("concurrency", "concurrency", ValueKind::UInt, "network concurrency to use when pulling a remote VM from the OCI-compatible registry"),
            OptSpec::flag("deduplicate", "").hidden(),
            OptSpec::value("prune-limit", "n", ValueKind::UInt, "limit automatic pruning to n gigabytes"),
        ],
    }
}

fn set_spec() -> CommandSpec {
    CommandSpec {
        name: "set",
        abstract_text: "Modify VM's configuration",
        discussion: "",
        usage: "set <name> [--cpu <cpu>] [--memory <memory>] [--display <display>] [--display-refit] [--no-display-refit] [--random-mac] [--random-serial] [--disk <path>] [--disk-size <disk-size>]",
        args: vec![name_arg()],
        opts: vec![
            OptSpec::value("cpu", "cpu", ValueKind::UInt16, "Number of VM CPUs"),
            OptSpec::value("memory", "memory", ValueKind::UInt64, "VM memory size in megabytes"),
            OptSpec::value("display", "display", ValueKind::Text, "VM display resolution in a format of WIDTHxHEIGHT[pt|px]"),
            OptSpec::flag("display-refit", "Whether to automatically reconfigure the VM's display to fit the window"),
            OptSpec::flag("no-display-refit", "Whether to automatically reconfigure the VM's display to fit the window"),
            OptSpec::flag("random-mac", "Generate a new random MAC address for the VM."),
            OptSpec::flag("random-serial", "Generate a new random serial number for the macOS VM."),
            OptSpec::value("disk", "path", ValueKind::Text, "Replace the VM's disk contents with the disk contents at path."),
            OptSpec::value("disk-size", "disk-size", ValueKind::UInt16, "Resize the VMs disk to the specified size in GB (note that the disk size can only be increased to avoid losing data)"),
        ],
    }
}

fn get_spec() -> CommandSpec {
    CommandSpec {
        name: "get",
        abstract_text: "Get a VM's configuration",
        discussion: "",
        usage: "get <name> [--format <format>]",
        args: vec![ArgSpec {
            name: "name",
            help: "VM name.",
            arity: Arity::One,
        }],
        opts: vec![OptSpec::value(
            "format",
            "format",
            ValueKind::Choice(FORMAT),
            "Output format: text or json",
        )],
    }
}

fn list_spec() -> CommandSpec {
    CommandSpec {
        name: "list",
        abstract_text: "List created VMs",
        discussion: "",
        usage: "list [--source <source>] [--format <format>] [--quiet]",
        args: vec![],
        opts: vec![
            OptSpec::value(
                "source",
                "source",
                ValueKind::Text,
                "Only display VMs from the specified source (e.g. --source local, --source oci).",
            ),
            OptSpec::value(
                "format",
                "format",
                ValueKind::Choice(FORMAT),
                "Output format: text or json",
            ),
            OptSpec::flag("quiet", "Only display VM names.").short('q'),
        ],
    }
}

fn ip_spec() -> CommandSpec {
    CommandSpec {
        name: "ip",
        abstract_text: "Get VM's IP address",
        discussion: "",
        usage: "ip <name> [--wait <wait>] [--resolver <resolver>]",
        args: vec![name_arg()],
        opts: vec![
            OptSpec::value(
                "wait",
                "wait",
                ValueKind::UInt16,
                "Number of seconds to wait for a potential VM booting",
            ),
            OptSpec::value(
                "resolver",
                "resolver",
                ValueKind::Choice(&["dhcp", "arp", "agent"]),
                "Strategy for resolving IP address",
            ),
        ],
    }
}

fn exec_spec() -> CommandSpec {
    CommandSpec {
        name: "exec",
        abstract_text: "Execute a command in a running VM",
        discussion: "Requires Tart Guest Agent running in a guest VM.\n\nNote that all non-vanilla Cirrus Labs VM images already have the Tart Guest Agent installed.",
        usage: "exec [-i] [-t] <name> <command> ...",
        args: vec![
            name_arg(),
            ArgSpec { name: "command", help: "Command to execute", arity: Arity::Passthrough },
        ],
        opts: vec![
            OptSpec::flag("", "Attach host's standard input to a remote command").short('i'),
            OptSpec::flag("", "Allocate a remote pseudo-terminal (PTY)").short('t'),
        ],
    }
}

fn pull_spec() -> CommandSpec {
    CommandSpec {
        name: "pull",
        abstract_text: "Pull a VM from a registry",
        discussion: "Pulls a virtual machine from a remote OCI-compatible registry.",
        usage: "pull <remote-name> [--insecure] [--concurrency <concurrency>]",
        args: vec![ArgSpec { name: "remote-name", help: "remote VM name", arity: Arity::One }],
        opts: vec![
            OptSpec::flag("insecure", "connect to the OCI registry via insecure HTTP protocol"),
            OptSpec::value("concurrency", "concurrency", ValueKind::UInt, "network concurrency to use when pulling a remote VM from the OCI-compatible registry"),
            OptSpec::flag("deduplicate", "").hidden(),
        ],
    }
}

fn rename_spec() -> CommandSpec {
    CommandSpec {
        name: "rename",
        abstract_text: "Rename a local VM",
        discussion: "",
        usage: "rename <name> <new-name>",
        args: vec![
            name_arg(),
            ArgSpec {
                name: "new-name",
                help: "new VM name",
                arity: Arity::One,
            },
        ],
        opts: vec![],
    }
}

fn stop_spec() -> CommandSpec {
    CommandSpec {
        name: "stop",
        abstract_text: "Stop a VM",
        discussion: "",
        usage: "stop <name> [--timeout <timeout>]",
        args: vec![name_arg()],
        opts: vec![OptSpec::value(
            "timeout",
            "timeout",
            ValueKind::UInt64,
            "Seconds to wait for graceful termination before forcefully terminating the VM",
        )
        .short('t')],
    }
}

fn delete_spec() -> CommandSpec {
    CommandSpec {
        name: "delete",
        abstract_text: "Delete a VM",
        discussion: "",
        usage: "delete <name> ...",
        args: vec![ArgSpec {
            name: "name",
            help: "VM name",
            arity: Arity::Repeating,
        }],
        opts: vec![],
    }
}

/// Hidden from `tart --help` (`shouldDisplay: false`), but it works: Orchard's worker calls it.
fn fqn_spec() -> CommandSpec {
    CommandSpec {
        name: "fqn",
        abstract_text: "Get a fully-qualified VM name",
        discussion: "",
        usage: "fqn <name>",
        args: vec![name_arg()],
        opts: vec![],
    }
}

fn run_spec() -> CommandSpec {
    let text = ValueKind::Text;
    CommandSpec {
        name: "run",
        abstract_text: "Run a VM",
        discussion: "",
        usage: "run [<options>] <name>",
        args: vec![name_arg()],
        opts: vec![
            OptSpec::flag("no-graphics", "Don't open a UI window."),
            OptSpec::flag("serial", "Open serial console in /dev/ttySXX"),
            OptSpec::value("serial-path", "serial-path", text, "Attach an externally created serial console"),
            OptSpec::flag("graphics", "").hidden(),
            OptSpec::flag("no-audio", "Disable audio pass-through to host."),
            OptSpec::flag("no-clipboard", "Disable clipboard sharing between host and guest."),
            OptSpec::flag("recovery", "Boot into recovery mode"),
            OptSpec::flag("vnc", "Use screen sharing instead of the built-in UI."),
            OptSpec::flag("vnc-experimental", "Use Virtualization.Framework's VNC server instead of the built-in UI."),
            OptSpec::value("disk", "path[:options]", text, "Additional disk attachments with an optional read-only and synchronization options in the form of path[:options]").repeating(),
            OptSpec::value("rosetta", "tag", text, "Attaches a Rosetta share to the guest Linux VM with a specific tag"),
            OptSpec::value("dir", "[name:]path[:options]", text, "Additional directory shares with an optional read-only and mount tag options in the form of [name:]path[:options]").repeating(),
            OptSpec::flag("nested", "Enable nested virtualization if possible"),
            OptSpec::value("net-bridged", "interface name", text, "Use bridged networking instead of the default shared (NAT) networking").repeating(),
            OptSpec::flag("net-softnet", "Use software networking provided by Softnet instead of the default shared (NAT) networking"),
            OptSpec::value("net-softnet-allow", "comma-separated CIDRs", text, "Comma-separated list of CIDRs to allow the traffic to when using Softnet isolation"),
            OptSpec::value("net-softnet-block", "comma-separated CIDRs", text, "Comma-separated list of CIDRs to block the traffic to when using Softnet isolation"),
            OptSpec::value("net-softnet-expose", "comma-separated port specifications", text, "Comma-separated list of TCP ports to expose (e.g. --net-softnet-expose 2222:22,8080:80)"),
            OptSpec::flag("net-host", "Restrict network access to the host-only network"),
            OptSpec::value("root-disk-opts", "options", text, "Set the root disk options (e.g. --root-disk-opts=\"ro\" or --root-disk-opts=\"caching=cached,sync=none\")"),
            OptSpec::flag("suspendable", "Disables audio and entropy devices and switches to only Mac-specific input devices."),
            OptSpec::flag("capture-system-keys", "Whether system hot keys should be sent to the guest instead of the host"),
            OptSpec::flag("no-trackpad", "Disable the trackpad"),
            OptSpec::flag("no-pointer", "Disable the pointer"),
            OptSpec::flag("no-keyboard", "Disable the keyboard"),
        ],
    }
}

/// `tart --help`.
pub fn root_help() -> String {
    let mut out = String::from(
        "OVERVIEW: Tart is a tool to manage virtual machines on Apple devices.\n\nUSAGE: tart <subcommand>\n\nOPTIONS:\n  --version               Show the version.\n  -h, --help              Show help information.\n\nSUBCOMMANDS:\n",
    );
    for (name, abstract_text) in SUBCOMMANDS {
        out.push_str(&format!("  {name:<22}{abstract_text}\n"));
    }
    out.push_str("\n  See 'tart help <subcommand>' for detailed help.\n");
    out
}
