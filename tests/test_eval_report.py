"""The summary's findings follow the numbers: swap the numbers and the verdicts swap."""

import copy

from evaluation.report import CRITERIA, claims, compare, headline_table


def entry(label, group, psnr, ssim, tce, sqnr, bits=4.5):
    def per(v):
        return {"mean": v, "per_sample": [v, v - 0.001]}

    return {
        "label": label, "group": group, "bits_per_element": bits, "psnr": per(psnr), "ssim": per(ssim),
        "temporal_consistency_error": per(tce), "final_latent_sqnr_db": sqnr,
        "activation_bits_per_element_effective": bits, "salient_row_fraction": 0.0,
        "layer_sqnr": {"activation_db": {"median": 20.0}, "output_db": {"median": 19.0}}, "wall_time_s": 1.0,
    }  # fmt: skip


def result(fb32_psnr):
    return {
        "methods": {
            "mxfp4": entry("MXFP4", "baseline", 30.0, 0.95, 0.02, 15.0, 4.25),
            "fb32": entry("FB32", "proposed", fb32_psnr, 0.96, 0.01, 18.0, 4.40625),
        },
        "reference": {"wall_time_s": 1.0},
    }


def test_compare_respects_the_direction_of_each_metric():
    r = result(31.0)
    verdicts = {c.key: compare(r["methods"]["fb32"], r["methods"]["mxfp4"], c)["verdict"] for c in CRITERIA}
    assert verdicts == {"psnr": "wins", "ssim": "wins", "temporal_consistency_error": "wins", "final_latent_sqnr_db": "wins"}


def test_claims_follow_the_numbers():
    winning = "\n".join(claims(result(31.0)))
    losing = "\n".join(claims(result(29.0)))
    assert "wins on PSNR (31.00 vs 30.00 dB, +1.00" in winning
    assert "loses on PSNR (29.00 vs 30.00 dB, -1.00" in losing


def test_ties_are_called_ties():
    r = result(30.0)
    text = "\n".join(claims(r))
    assert "ties on PSNR" in text


def test_headline_table_has_one_row_per_method_and_the_reference():
    rows = headline_table(copy.deepcopy(result(31.0)))
    assert len(rows) == 2 + 2 + 1
