"""Numba kernels: the math only, no validation.

Callers (``fastnn.layers``, ``fastnn.network``) check shapes, dtypes, finiteness and
label ranges first: a kernel indexes with the labels it is given and Numba does no
bounds checking.
"""
