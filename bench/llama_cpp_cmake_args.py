"""CMAKE_ARGS for building llama-cpp-python (the test oracle and `make bench`) on this machine.

llama.cpp's default ``GGML_NATIVE=ON`` compiles with ``-march=native``, which on Intel Xeons with AMX
(Sapphire Rapids and later) turns on ggml's AMX matmul; inside virtual machines that do not grant the
AMX tile state it segfaults in ``ggml_backend_amx_mul_mat`` on the first batch. So: ``GGML_NATIVE=OFF``
and each x86 feature of this CPU (``/proc/cpuinfo`` flags) switched on by name, AMX never. Elsewhere
(ARM, macOS, no /proc/cpuinfo) llama.cpp's native default is kept. Prints the arguments on one line.
"""
from __future__ import annotations

import platform
from pathlib import Path

# /proc/cpuinfo flag -> llama.cpp CMake option (ggml/CMakeLists.txt)
FEATURES = [
    ("avx", "GGML_AVX"), ("avx2", "GGML_AVX2"), ("fma", "GGML_FMA"), ("f16c", "GGML_F16C"), ("bmi2", "GGML_BMI2"),
    ("avx_vnni", "GGML_AVX_VNNI"), ("avx512f", "GGML_AVX512"), ("avx512vbmi", "GGML_AVX512_VBMI"),
    ("avx512_vnni", "GGML_AVX512_VNNI"), ("avx512_bf16", "GGML_AVX512_BF16"),
]


def cmake_args() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if platform.machine() not in ("x86_64", "AMD64") or not cpuinfo.is_file():
        return ""
    flags: set[str] = set()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    args = ["-DGGML_NATIVE=OFF", "-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"]
    args += [f"-D{opt}={'ON' if flag in flags else 'OFF'}" for flag, opt in FEATURES]
    return " ".join(args)


if __name__ == "__main__":
    print(cmake_args())
