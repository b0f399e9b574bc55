"""Step 3, hcloud provider (image-builder's providers role): cloud-init, CSI prerequisites,
iscsid, cloud-init ordering after containerd."""

from __future__ import annotations

from ..options import RecipeContext
from ..plan import Put, Run, Step
from ..profiles import CSI_DEBS
from .common import apt_install, enable

BOOT_ORDER = "[Unit]\nAfter=containerd.service\nWants=containerd.service\n"
# cloud-init's logging as image-builder's 05_logging.cfg sets it: log_cfgs are tried in order,
# so syslog (journal) first and the file when /dev/log is missing; the output pipe stamps every
# line of cloud-init-output.log with the time (python3, which cloud-init itself needs).
LOGGING_CFG = """\
## cloud-init logging (image-builder's 05_logging.cfg): syslog, else file; timestamped output
_log:
 - &log_base |
   [loggers]
   keys=root,cloudinit

   [handlers]
   keys=consoleHandler,cloudLogHandler

   [formatters]
   keys=simpleFormatter,arg0Formatter

   [logger_root]
   level=DEBUG
   formatter=arg0Formatter
   handlers=consoleHandler,cloudLogHandler

   [logger_cloudinit]
   level=DEBUG
   qualname=cloudinit
   handlers=
   propagate=1

   [handler_consoleHandler]
   class=StreamHandler
   level=WARNING
   formatter=arg0Formatter
   args=(sys.stderr,)

   [formatter_arg0Formatter]
   format=%(asctime)s - %(filename)s[%(levelname)s]: %(message)s

   [formatter_simpleFormatter]
   format=[CLOUDINIT]%(asctime)s - %(filename)s[%(levelname)s]: %(message)s
 - &log_file |
   [handler_cloudLogHandler]
   class=FileHandler
   level=DEBUG
   formatter=arg0Formatter
   args=('/var/log/cloud-init.log',)
 - &log_syslog |
   [handler_cloudLogHandler]
   class=handlers.SysLogHandler
   level=DEBUG
   formatter=simpleFormatter
   args=("/dev/log", handlers.SysLogHandler.LOG_USER)
log_cfgs:
 - [ *log_base, *log_syslog ]
 - [ *log_base, *log_file ]
output: {all: '| python3 -c ''exec("import sys,time\\nfor line in sys.stdin:\\n  sys.stdout.write(\\" \\".join((time.strftime(\\"[%Y-%m-%d %H:%M:%S]\\", time.localtime()), line)))")'' | tee -a /var/log/cloud-init-output.log'}
"""
FEATURES = "/usr/lib/python3/dist-packages/cloudinit/features.py"
FEATURE_OVERRIDES = "/usr/lib/python3/dist-packages/cloudinit/feature_overrides.py"
FEATURE_FLAG = "ERROR_ON_USER_DATA_FAILURE = False"
BLOCK_BEGIN, BLOCK_END = "# BEGIN capi-image block: image-builder cloud-init-features.patch", "# END capi-image block"


def patch_features() -> Run:
    """Append the flag to cloudinit/features.py between markers, replacing an earlier block
    (idempotent, like Ansible's blockinfile that image-builder uses): current cloud-init no
    longer imports feature_overrides.py, so only the patched module takes effect."""
    return Run(
        f"sed -i '/^{BLOCK_BEGIN}$/,/^{BLOCK_END}$/d' {FEATURES} && "
        f"printf '%s\\n' '{BLOCK_BEGIN}' '{FEATURE_FLAG}' '{BLOCK_END}' >> {FEATURES}"
    )


def provider(ctx: RecipeContext) -> Step:
    return Step(
        "hcloud-provider",
        "cloud-init packages, CSI prerequisites, iscsid, cloud-init after containerd",
        (
            apt_install([*ctx.profile.provider_debs, *CSI_DEBS]),
            enable("iscsid", now=True),
            Run("systemctl disable --now hv-kvp-daemon 2>/dev/null || true"),
            Put("/etc/systemd/system/cloud-final.service.d/boot-order.conf", BOOT_ORDER.encode()),
            Put("/etc/systemd/system/cloud-config.service.d/boot-order.conf", BOOT_ORDER.encode()),
            # cloud-init >= 24.3 renamed cloud-init.service to cloud-init-network.service.
            Run(
                "if systemctl cat cloud-init-network.service >/dev/null 2>&1; then n=cloud-init-network; else n=cloud-init; fi; "
                + enable("cloud-final", "cloud-config", "$n", "cloud-init-local").command
            ),
            Put("/etc/cloud/cloud.cfg.d/05_logging.cfg", LOGGING_CFG.encode()),
            # A broken user-data part must not stop a node from joining: image-builder writes the
            # old override file (read by cloud-init < 23.4) and patches features.py (the rest).
            Put(FEATURE_OVERRIDES, f"{FEATURE_FLAG}\n".encode()),
            patch_features(),
        ),
    )
