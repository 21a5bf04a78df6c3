"""The fused CPU op's buffers are reused, not faulted in afresh: glibc's thresholds raised once (fused/memory.py).

Each case runs in a fresh interpreter: the setting is process-wide and cannot be taken back.
"""

import json
import subprocess
import sys

import pytest

from mdn_snntorch.fused import c_kernels, memory

CALLS = 6  # measured after two calls that set the heap up
_SCRIPT = """
import json, resource, sys, torch
import mdn_snntorch as mdn
from mdn_snntorch.fused import memory
torch.set_num_threads(1)
neuron = mdn.MDN("2-FS", check_input=False)
x = torch.randn(100, 128, 1024, requires_grad=True)  # 52 MB per [T, B, N] tensor: above glibc's largest mmap threshold

def call():
    neuron.reset_mem()
    neuron.multi_step(x).sum().backward()

call()
call()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(int(sys.argv[1])):
    call()
print(json.dumps({"faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, "limit": memory.kept_limit()}))
"""


def run(env_value: str | None) -> dict:
    import os

    env = {k: v for k, v in os.environ.items() if k != memory.ENV}
    if env_value is not None:
        env[memory.ENV] = env_value
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(CALLS)], capture_output=True, text=True, env=env, timeout=300, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(memory._mallopt() is None, reason="not glibc: the C library's own policy stays")
def test_the_fused_op_keeps_its_freed_buffers_unless_told_not_to():
    if c_kernels.library() is None:
        pytest.skip("no C compiler here: the fused op runs its PyTorch loop, which leaves malloc alone")
    kept, system = run(None), run("0")
    assert kept["limit"] == memory.LIMIT and system["limit"] is None
    # a [100, 128, 1024] float32 tensor is 12,800 pages of 4 KiB; each call allocates four of them (the current,
    # the spikes, their gradient, the input's), all faulted in afresh under glibc's own policy; kept, the heap
    # serves them again (seen per call: none to three of the four faulted in, where the heap's free blocks did
    # not line up; over six calls at most a quarter of the pages)
    assert system["faults"] >= 4 * 12_800 * CALLS
    assert kept["faults"] < 0.5 * system["faults"]


def test_a_bad_limit_is_refused():
    for bad in (0, -1, 2**31, 1.5, True):
        with pytest.raises(ValueError, match="limit must be a number of bytes"):
            memory.keep_freed_memory(bad)
