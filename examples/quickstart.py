"""Five-year and lifetime Gail risk for the example cohort, with each row's status.

Run from the repository root: ``python examples/quickstart.py``
"""

from pathlib import Path

import pandas as pd

import riskmodel

cohort = pd.read_csv(Path(__file__).with_name("example_cohort.csv"))
five = riskmodel.predict_risk(cohort, model="gail", horizon=5.0, details=True)
life = riskmodel.predict_risk(cohort, horizon="lifetime")

table = pd.DataFrame({
    "id": cohort["id"],
    "age": cohort["age"],
    "risk_5y_%": (100 * five["risk"]).round(2),
    "average_5y_%": (100 * five["average_risk"]).round(2),
    "lifetime_%": (100 * life["risk"]).round(1),
    "status": five["status"],
})
print(table.to_string(index=False))
print()
for row in five[five["status"] != "ok"].itertuples():
    print(f"{cohort.loc[row.Index, 'id']}: {row.status}: {row.message}")
