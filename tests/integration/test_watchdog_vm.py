"""The watchdog driver against a real kernel driver: tests/vm/test_watchdog_vm.sh boots
Debian's kernel with an emulated Intel 6300ESB in qemu (TCG here) and runs the project's
own watchdog/watchdog.c inside it.  `lease`: armed with W = TTL - S and petted after each
simulated renewal, then the renewals fail; the VM must be powered off by the watchdog no
sooner than W after the last keepalive and before the simulated lease would expire.
`magic`: the magic close leaves the VM running.  About 40 s (the kernel is cached under
/var/cache/pgwarden-test after the first run)."""

import os
import re
import subprocess

import harness

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "vm", "test_watchdog_vm.sh")


def test_real_watchdog_driver_in_qemu():
    p = subprocess.run(["bash", SCRIPT], capture_output=True, text=True, timeout=900,
                       env=harness.clean_env())
    out = p.stdout + p.stderr
    harness.log(out[-3000:])
    assert p.returncode == 0, out[-4000:]
    m = re.search(r"last keepalive -> (?:qemu exit|reset)\D*([0-9.]+) s", out)
    if m:
        harness.figure("VM: last keepalive -> watchdog power-off", float(m.group(1)))
