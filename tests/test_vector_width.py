"""The vector width fastnn's kernels prefer (``fastnn/kernels/target.py``).

Checked in the machine code: a kernel built for 512 bits uses ``zmm`` registers and one
built for 256 or 128 does not, while a user's own ``@njit`` function in the same process
compiles exactly as it does without fastnn (no global ``NUMBA_CPU_FEATURES``-style side
effect); the disk cache keeps builds for different widths apart; the automatic rule
follows the CPU's features.  Each scenario runs in a subprocess with its own empty
``NUMBA_CACHE_DIR`` (``inspect_asm`` needs a fresh compile, and the width is read at
import).
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from fastnn import _config

pytestmark = pytest.mark.slow

HAS_AVX512 = _config._AVX512 <= _config.target_features()

#: compiles a user function and a fastnn kernel; prints their register use and the loss
PROBE = r"""
import json, os, re, sys
import numpy as np
import numba

@numba.njit(error_model="numpy", fastmath={"contract"})
def user_axpy(a, x, y):
    for i in range(x.shape[0]):
        y[i] = a * x[i] + y[i]

def user_asm():
    x = np.ones(1000, np.float32)
    user_axpy(np.float32(2), x, x.copy())
    return user_axpy.inspect_asm(user_axpy.signatures[0])

out = {}
if os.environ.get("USER_FIRST"):
    out["user"] = user_asm()
if os.environ.get("WITH_FASTNN"):
    import fastnn
    from fastnn.cli import make_data
    X, y = make_data("spiral", 100, 3, 0, np.float32)
    m = fastnn.MLP([2, 8, 3], seed=0)
    out["loss"] = m.loss(X, y)
    k = m._loss_kernel
    st = k.stats
    out["hits"] = sum(st.cache_hits.values())
    out["misses"] = sum(st.cache_misses.values())
    if out["misses"]:
        # registers in the kernel's own functions (not the wrappers that unbox arguments)
        zmm = ymm = 0
        body = False
        for line in k.inspect_asm(k.signatures[0]).splitlines():
            label = re.match(r"^(\S+):", line)
            if label and not label.group(1).startswith("."):
                body = label.group(1).startswith("_ZN6fastnn")
            zmm += body and "%zmm" in line
            ymm += body and "%ymm" in line
        out["kernel_zmm"], out["kernel_ymm"] = zmm, ymm
    out["width"] = fastnn._config.VECTOR_WIDTH
if "user" not in out:
    out["user"] = user_asm()
asm = out.pop("user")
# the instructions only (no directives); symbol names carry per-process counters and
# addresses differ
code = "\n".join(ln for ln in asm.splitlines() if ln.startswith("\t") and ln[1:2] != ".")
out["user_asm"] = re.sub(r"[\w.$]*_ZN[\w.$]+|0x[0-9a-f]+|\d{6,}", "N", code)
out["user_zmm"] = len(re.findall(r"%zmm", asm))
print("RESULT " + json.dumps(out))
"""


def probe(tmp_path, name, **env):
    cache = tmp_path / name
    cache.mkdir(exist_ok=True)
    from subproc import env as sub_env

    full = sub_env(NUMBA_CACHE_DIR=str(cache), **{k: str(v) for k, v in env.items()})
    for key in ("FASTNN_VECTOR_WIDTH", "NUMBA_CPU_FEATURES", "NUMBA_CPU_NAME"):
        if key not in env:
            full.pop(key, None)
    proc = subprocess.run([sys.executable, "-c", PROBE], env=full, capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.mark.skipif(not HAS_AVX512, reason="needs a CPU with AVX-512 to compare 512 bits")
def test_the_width_reaches_the_machine_code(tmp_path):
    wide = probe(tmp_path, "w512", WITH_FASTNN=1, FASTNN_VECTOR_WIDTH=512)
    narrow = probe(tmp_path, "w256", WITH_FASTNN=1, FASTNN_VECTOR_WIDTH=256)
    assert wide["width"] == 512 and narrow["width"] == 256
    assert wide["kernel_zmm"] > 50, "512 bits asked, no zmm in the loss kernel"
    assert narrow["kernel_zmm"] == 0 and narrow["kernel_ymm"] > 50
    # another width may move the last bits, not more
    assert wide["loss"] == pytest.approx(narrow["loss"], rel=1e-6)


def test_the_users_own_numba_code_is_not_changed(tmp_path):
    """fastnn at 128 bits (the most different from any default) in the same process,
    before and after the user's function is compiled: its machine code is the same as
    in a process without fastnn."""
    alone = probe(tmp_path, "alone")
    after = probe(tmp_path, "after", WITH_FASTNN=1, FASTNN_VECTOR_WIDTH=128)
    before = probe(tmp_path, "before", WITH_FASTNN=1, FASTNN_VECTOR_WIDTH=128, USER_FIRST=1)
    assert after["width"] == 128 and after["kernel_zmm"] == 0
    assert after["user_asm"] == alone["user_asm"]
    assert before["user_asm"] == alone["user_asm"]


def test_the_disk_cache_keeps_widths_apart(tmp_path):
    """Same cache directory: a new width compiles (never loads the other width's code);
    going back loads the first build."""
    first = probe(tmp_path, "shared", WITH_FASTNN=1, FASTNN_VECTOR_WIDTH=256)
    other = probe(tmp_path, "shared", WITH_FASTNN=1, FASTNN_VECTOR_WIDTH=128)
    again = probe(tmp_path, "shared", WITH_FASTNN=1, FASTNN_VECTOR_WIDTH=256)
    assert first["misses"] == 1 and first["hits"] == 0
    assert other["misses"] == 1 and other["hits"] == 0
    assert again["misses"] == 0 and again["hits"] == 1
    assert again["loss"] == first["loss"]


@pytest.mark.parametrize("features, width", [
    ({"sse2", "avx", "avx2", "fma"}, None),  # AVX2 (Zen 3, Haswell): LLVM's pick
    ({"avx2", "fma", "avx512f"}, None),  # AVX-512F alone (Knights Landing): not v4
    ({"avx2", "fma", "avx512f", "avx512vl", "avx512bw", "avx512dq"}, 512),
    ({"avx2", "avx512f", "avx512vl", "avx512bw", "avx512dq", "avx512fp16", "amx-tile"}, 512),
    (set(), None),  # not x86 (aarch64: NEON's 128 bits is all there is)
])
def test_the_automatic_rule_follows_the_features(features, width):
    assert _config._auto_vector_width(features) == width


@pytest.mark.parametrize("value, expected", [
    ("512", 512), ("256", 256), ("128", 128), ("llvm", None), ("auto", "auto"),
    (" 256 ", 256), ("", "auto"),
])
def test_the_override(monkeypatch, value, expected):
    monkeypatch.setenv("FASTNN_VECTOR_WIDTH", value)
    auto = _config._auto_vector_width(_config.target_features())
    assert _config._vector_width() == (auto if expected == "auto" else expected)


@pytest.mark.parametrize("value", ["1024", "wide", "64"])
def test_a_bad_override_warns_and_uses_the_rule(monkeypatch, value):
    monkeypatch.setenv("FASTNN_VECTOR_WIDTH", value)
    with pytest.warns(RuntimeWarning, match="FASTNN_VECTOR_WIDTH"):
        width = _config._vector_width()
    assert width == _config._auto_vector_width(_config.target_features())


def test_target_info_names_the_cpu_and_the_width():
    info = _config.target_info()
    assert info["vector_width"] == _config.VECTOR_WIDTH
    assert info["cpu"] and info["llvm_cpu"]
    assert isinstance(info["vector_features"], list)
    assert info["vector_width_source"] in ("auto", "FASTNN_VECTOR_WIDTH")
    assert np.all([isinstance(f, str) for f in info["vector_features"]])
