"""Make a node's program keep to its share of the GPU, without the program doing anything.

The runner puts `sitecustomize.py` (below) on the program's PYTHONPATH. Python imports it at start-up; it
waits for the program to import torch and then caps torch's CUDA allocator to ENGINE_GPU_MEMORY_FRACTION of
each visible device. Programs that never import torch pay nothing.
"""
from __future__ import annotations

SITECUSTOMIZE = '''\
# Written by the engine's runner: caps torch's GPU memory to this node's share (ENGINE_GPU_MEMORY_FRACTION).
import importlib.abc
import importlib.util
import os
import sys

_FRACTION = float(os.environ.get("ENGINE_GPU_MEMORY_FRACTION", "1") or 1)


class _CapTorchOnImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "torch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            if module.cuda.is_available():
                for device in range(module.cuda.device_count()):
                    module.cuda.set_per_process_memory_fraction(_FRACTION, device)

        spec.loader.exec_module = exec_module
        return spec


if 0.0 < _FRACTION < 1.0:
    sys.meta_path.insert(0, _CapTorchOnImport())
'''

HOOK_DIR = ".engine_site"


def share_files_and_env(gpu_ids: list[str], fraction: float) -> tuple[dict[str, bytes], dict[str, str]]:
    """Files to add to the node's directory and environment variables for a runner holding `fraction` of
    the GPUs `gpu_ids` (empty: no GPU, and the program must not see one)."""
    env = {"CUDA_VISIBLE_DEVICES": ",".join(gpu_ids), "ENGINE_GPU_FRACTION": f"{fraction:g}"}
    if not gpu_ids:
        return {}, env
    env["ENGINE_GPU_MEMORY_FRACTION"] = f"{min(fraction, 1.0):g}"
    env["PYTHONPATH"] = HOOK_DIR
    return {f"{HOOK_DIR}/sitecustomize.py": SITECUSTOMIZE.encode()}, env
