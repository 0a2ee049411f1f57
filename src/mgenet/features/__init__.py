"""Video Swin feature pre-extraction (rule ``extract_features``).

``decode`` reads frames (decord / frame folders), ``crops`` cuts and normalises the human-centric crops, ``swin``
builds F_B (Video Swin-T stages 1-2, mmaction2's modules) and loads its checkpoint, ``plan`` decides which frames and
boxes each clip or track chunk reads, ``extract`` streams a video through them into the features HDF5 file whose
layout ``mgenet.io`` owns, ``estimate`` counts what a dataset's features will take, and ``job`` sets a per-video
backbone job up.
"""
