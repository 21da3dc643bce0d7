"""Observational statistics of InfNet Sec. 3 and RiseNet Sec. 2-3, one module per family.

* ``common``: weeks, conversion flags, adopters, degrees, neighbour pairs
* ``conversion``: conversion index (Def. 4) and CI lift vs price index (InfNet Fig. 2a)
* ``structure``: degree-gap CI and close neighbours (InfNet Fig. 2b, 2c)
* ``temporal``: 2-hop temporal CI (InfNet Fig. 2d)
* ``rising``: rising stars, MDSW, hubs, scale vs sales, fluctuation (RiseNet Fig. 2, 3)
* ``recency``: re-contact by the age of a tie, against a within-sender null (E10)
* ``significance``: the tests, from small aggregates
* ``observe``: the run that writes every ``stats/<statistic>`` table
"""
