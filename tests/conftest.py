"""Every test sees 4 fake CPU devices, so sharding code is exercised on one machine.

The flag must be set before JAX starts, which is why it lives here and not in a fixture.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_FLAG = "--xla_force_host_platform_device_count"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAG}=4".strip()
os.environ.setdefault("MPLBACKEND", "Agg")
