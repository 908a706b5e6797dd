"""Builds the one compiled piece, research/nn/_quant_kernels (GGUF block-quantized matmuls for
XLA:CPU through jax.ffi); everything else is in setup.cfg. The kernel is optional: if it does
not build, the install says why and inference keeps its weights in float32."""

import os
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuild(build_ext):
  def run(self):
    try:
      super().run()
    except Exception as e:  # no compiler, no headers: the pure-Python package still works
      print(f"warning: research/nn/_quant_kernels was not built ({e}); GGUF models will "
            "decode with float32 weights.")

  def build_extension(self, ext):
    import jaxlib  # the XLA FFI headers ship with jaxlib (a build requirement)
    ext.include_dirs.append(os.path.join(os.path.dirname(jaxlib.__file__), "include"))
    super().build_extension(ext)


# -march=native: the kernel is built where it runs (pip builds it from source), and the
# dequantize-and-dot loops vectorize to the widest units the CPU has.
FLAGS = ["-O3", "-std=c++17", "-fvisibility=hidden", "-Wno-attributes", "-Wno-return-type"]
if sysconfig.get_platform() == "linux-x86_64":
  FLAGS.append("-march=native")

setup(
    ext_modules=[Extension("research.nn._quant_kernels", ["research/nn/quant_kernels.cc"],
                           language="c++", extra_compile_args=FLAGS, optional=True)],
    cmdclass={"build_ext": OptionalBuild},
)
