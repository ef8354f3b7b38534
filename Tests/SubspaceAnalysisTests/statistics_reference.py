"""Prints the scipy.stats values StatisticsTests.swift checks against (python3 with scipy; 1.17.1 made them).

    python3 Tests/SubspaceAnalysisTests/statistics_reference.py
"""
import numpy as np
from scipy import stats

x = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]
y = [2, 7, 1, 8, 2, 8, 1, 8, 2, 8]
print("rankdata", [float(r) for r in stats.rankdata(x)])
print("spearman", repr(float(stats.spearmanr(x, y).statistic)), "pearson", repr(float(stats.pearsonr(x, y).statistic)))

# Welch: t, two-sided p, Welch–Satterthwaite degrees of freedom.
for a, b in [([1.0, 1.1, 0.9], [1.5, 1.6, 1.4]), ([1.0, 1.1, 0.9], [1.25, 1.35, 1.1]),
             ([2.0, 2.3, 1.9, 2.2], [2.4, 2.2, 2.9]), ([5.788, 5.828, 5.873], [5.992, 5.992, 5.992]),
             ([1.0, 1.2], [1.3, 1.5, 1.4, 1.45, 1.38])]:
    r = stats.ttest_ind(a, b, equal_var=False)
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    print("welch", a, b, repr(float(r.statistic)), repr(float(r.pvalue)), repr(float(df)))

for t, df in [(2.0, 4.0), (2.776445105197799, 4.0), (1.0, 1.5), (10.0, 2.0), (0.5, 30.0), (3.0, 3.7)]:
    print("t two-sided", t, df, repr(float(2 * stats.t.sf(abs(t), df))))

for df in [4.0, 2.0, 3.805940594059407]:
    print("t 95% critical", df, repr(float(stats.t.ppf(0.975, df))))
