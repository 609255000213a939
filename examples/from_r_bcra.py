"""For R users: BCRA's columns and functions, one to one.

R:       absolute.risk(exampledata, Raw_Ind = 1, Avg_White = 0)
Python:  riskmodel.gail.bcra_absolute_risk(frame, raw_ind=1, avg_white=0)

Run from the repository root: ``python examples/from_r_bcra.py``
"""

import pandas as pd

from riskmodel.gail import bcra_absolute_risk, bcra_recode_check, bcra_relative_risk

frame = pd.DataFrame({
    "ID": [1, 2, 3],
    "T1": [40.0, 47.3, 60.0],
    "T2": [45.0, 52.3, 65.0],
    "N_Biop": [99, 2, 1],
    "HypPlas": [99, 1, 0],
    "AgeMen": [12, 11, 14],
    "Age1st": [25, 98, 22],  # 98 = nulliparous
    "N_Rels": [1, 2, 0],
    "Race": [1, 1, 1],
})
out = frame[["ID"]].assign(
    AbsRisk=bcra_absolute_risk(frame),
    AbsRisk_Avg=bcra_absolute_risk(frame, avg_white=1),
)
out = out.join(bcra_relative_risk(frame)).join(bcra_recode_check(frame)[["Error_Ind"]])
print(out.round(6).to_string(index=False))
