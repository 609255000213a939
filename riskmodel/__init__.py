"""riskmodel: personalized breast-cancer risk prediction.

The data flow, one stage per module::

    cohort table ─► riskmodel.schema (validate, one status per row)
                 ─► models behind one protocol (riskmodel.models.RiskModel: gail, image, hybrid, …)
                 ─► riskmodel.api.predict_risk (one output row per input row)

>>> import pandas as pd, riskmodel
>>> cohort = pd.DataFrame({"age": [45.0], "race": ["white"], "age_at_menarche": [12.0],
...                        "age_at_first_birth": [25.0], "nulliparous": [False], "n_biopsies": [0],
...                        "atypical_hyperplasia": [float("nan")], "first_degree_relatives": [1]})
>>> riskmodel.predict_risk(cohort)[["risk", "status"]].round(5)
      risk status
0  0.01613     ok
"""

from riskmodel import gail, schema
from riskmodel.api import MODELS, predict_risk
from riskmodel.inference import load_image_model
from riskmodel.models.base import RiskModel
from riskmodel.schema import ColumnWarning, SchemaError
from riskmodel.version import __version__

__all__ = ["MODELS", "ColumnWarning", "HybridModel", "RiskModel", "SchemaError", "__version__", "gail", "load_hybrid",
           "load_image_model", "predict_risk", "recommend_screening", "schema"]


def __getattr__(name: str) -> object:
    # The fusion stack (scikit-learn, lifelines, xgboost) is imported only when it is asked for.
    if name in ("HybridModel", "load_hybrid"):
        from riskmodel.fusion import hybrid

        return getattr(hybrid, name)
    if name == "recommend_screening":
        # The screening stage (policies, FHIR, reports) is imported when it is first asked for.
        from riskmodel.screening.recommend import recommend_screening

        return recommend_screening
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
