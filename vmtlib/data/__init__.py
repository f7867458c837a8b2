"""Data for vmtlib: synthetic multi-task scenes and PASCAL-Context (PASCAL_MT).

``SyntheticScenes`` (``vmtlib.data.synthetic``) renders scenes with the four labels
on the fly for the CPU course; ``PascalContext`` (``vmtlib.data.pascal_context``)
reads the PASCAL_MT folder of the papers unchanged. Both return sample dicts with
the same keys (``image``, ``semseg``, ``human_parts``, ``sal``, ``normals``, ``meta``;
``meta`` says where the sample came from and differs between the two).
Both are ``vmtlib.data.samples.SampleDataset``s: ``ds.load(i)`` is the untransformed
sample, ``ds[i]`` the transformed one. The protocol's transforms live in
``vmtlib.data.transforms`` and the writer of a tiny PASCAL_MT folder in
``vmtlib.data.pascal_writer``.
"""

from vmtlib.data.pascal_context import PascalContext, PascalFormatError
from vmtlib.data.synthetic import SceneConfig, SyntheticScenes

__all__ = ["PascalContext", "PascalFormatError", "SceneConfig", "SyntheticScenes"]
