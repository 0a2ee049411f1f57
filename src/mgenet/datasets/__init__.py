"""Datasets: the layouts a dataset comes in, indexed into the manifest (``adapters``), and the synthetic demo
(``demo_plan`` plans it, ``demo_render`` draws it, ``demo`` writes it)."""
