"""Rouge-L F-measure between generated plans and references, as an ``evaluate`` metric module.

Load it by path, offline: ``evaluate.load(e2wm.evaluation.metrics.ROUGE_L_PATH)``. It wraps
``rouge_score``'s ``rougeL`` (the longest common subsequence of tokens, with stemming), the measure
E2WM used for plan generation.
"""

import datasets
import evaluate
from rouge_score import rouge_scorer

_DESCRIPTION = "Rouge-L F-measure (longest common subsequence), averaged over the examples."
_KWARGS_DESCRIPTION = """
Args:
    predictions: generated texts.
    references: reference texts, one per prediction.
    use_stemmer: stem words before matching (default True).
Returns:
    rougeL: the mean Rouge-L F-measure in [0, 1].
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RougeL(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Lin, Chin-Yew. ROUGE: A Package for Automatic Evaluation of Summaries. 2004.",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, use_stemmer=True):
        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)
        scores = [scorer.score(ref, pred)["rougeL"].fmeasure for pred, ref in zip(predictions, references, strict=True)]
        return {"rougeL": sum(scores) / len(scores) if scores else 0.0}
