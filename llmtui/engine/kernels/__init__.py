"""Kernels for weights kept in their GGUF blocks: C++ where a compiler is present, plain torch elsewhere."""
