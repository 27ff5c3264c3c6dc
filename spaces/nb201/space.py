"""The NAS-Bench-201 cell (Dong & Yang, ICLR 2020; darts-pt nasbench201/search_cells.py).

Node 0 is the cell input; node i = 1..3 sums one mixed edge from every earlier node, so 6
edges, numbered as the sorted keys '1<-0', '2<-0', '2<-1', '3<-0', '3<-1', '3<-2'; the cell
output is node 3. The topology is fixed (every edge stays) and `none` is a candidate like any
op: choosing it removes the edge. One cell type: all cells share one [6, 5] alpha.
"""
from spaces.cell import CellSpec

NODES = 4
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
CELL = CellSpec(types=("cell",), edges=tuple((i, j) for i in range(1, NODES) for j in range(i)),
                keep=None, none_selectable=True)
