"""Everything one training run is made of: data, models, attacks and the training loop."""

import os as _os

# Before torch loads OpenMP: idle OpenMP threads sleep instead of spinning. With Ray workers, a
# driver and other jobs sharing few cores, spinning threads made small-batch attack steps ~50x
# slower here (448 ms vs 10 ms per PGD step on 2 loaded cores). An explicit setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
