"""Kernels behind the fused ops of :mod:`mdn_snntorch.fused`: C for CPUs (:mod:`.cpu`), Triton for CUDA
GPUs (:mod:`.gpu`) and a plain PyTorch loop for everything else (:mod:`.torch_loop`), all with the
same arguments and results."""
