"""Supernet training methods (`run.method`): DARTS (1st/2nd order, fix-alpha), SDARTS, SGAS,
Shapley-NAS, IS-DARTS.

Importing the package registers all of them with gin.
"""
from runner.methods.darts import Darts
from runner.methods.sdarts import Sdarts
from runner.methods.is_darts import IsDarts
from runner.methods.sgas import Sgas
from runner.methods.shapley_nas import ShapleyNas

__all__ = ["Darts", "IsDarts", "Sdarts", "Sgas", "ShapleyNas"]
