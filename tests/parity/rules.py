"""The differences ``make parity`` expects, each with its reason (kept next to the parity table
in docs/recipe-parity.md), and what it ignores as volatile or test-bed only."""

from __future__ import annotations

from .state import Rule
from .upstream import STANDIN_DEBS

VOLATILE = "volatile kernel counters and per-boot values"
RANDOM = "random per machine (iSCSI initiator name, cloud-init's sudoers for the build user)"
STANDIN = "the parity run's own stand-ins for Ubuntu-only packages and the ctr ordering workaround"

IGNORE: list[Rule] = [
    *(
        Rule("sysctl", p, VOLATILE)
        for p in (
            "fs.dentry-state", "fs.inode-nr", "fs.inode-state", "fs.file-nr", "fs.aio-nr", "fs.quota.*",
            "kernel.random.*", "kernel.ns_last_pid", "kernel.pty.nr", "vm.user_reserve_kbytes",
            "vm.admin_reserve_kbytes", "dev.cdrom.info", "kernel.sched_domain.*", "net.netfilter.nf_conntrack_count",
            "kernel.tainted", "fs.binfmt_misc.*", "vm.min_free_kbytes", "vm.lowmem_reserve_ratio",
            "kernel.hostname", "*.stable_secret", "fs.pipe-user-pages-soft", "net.ipv4.tcp_mem", "net.ipv4.udp_mem",
            "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem", "net.core.*", "kernel.threads-max", "fs.file-max",
            "kernel.pid_max",
        )
    ),
    Rule("files", "/etc/iscsi/initiatorname.iscsi", RANDOM),
    Rule("files", "/etc/sudoers.d/90-cloud-init-users", RANDOM),
    *(Rule("packages", name, STANDIN) for name in STANDIN_DEBS),
    Rule("files", "/etc/apt/sources.list.d/standins.list", STANDIN),
]  # fmt: skip

RULES: list[Rule] = []
