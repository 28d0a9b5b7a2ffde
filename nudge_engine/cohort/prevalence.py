"""Prevalences and distributions the synthetic cohort draws from. All figures are approximations.

They are rounded from public US figures (CDC, NHANES, NSDUH, NIMH, USRDS) and bent where the
guardrails need work: rare conditions that a rule acts on are kept rare but never absent.

Adults (18+), approximate targets for the whole cohort:

==============================  ==========  ======================================================
hypertension (diagnosed)        ~38 %       NHANES 2017-2020, diagnosed/treated; rises with age
type 2 diabetes                 ~11 %       CDC National Diabetes Statistics Report (diagnosed+)
type 1 diabetes                 ~0.5 %      CDC NDSR (~1.9 M of ~260 M adults)
prediabetes (coded)             ~9 %        NHANES finds ~38 %, most of it never coded
CKD stage 3-5                   ~5-6 %      CDC CKD surveillance; stage 3 dominates
on dialysis                     ~0.2 %      USRDS (~550 k people)
heart failure                   ~2.5 %      AHA statistics (~6.7 M); ~6 % of them decompensated
coronary heart disease          ~6 %        CDC/NHIS; ~40 % of them with an old MI
MI within 90 days               ~0.2 %      ~800 k MIs a year; only the last 90 days count
CABG/PCI within 90 days         ~0.2 %      ~1 M procedures a year
atrial fibrillation             ~2.5 %      CDC; 75 % anticoagulated, most on DOACs
aortic stenosis                 ~0.7 %      ~2-4 % of people over 75
diabetic retinopathy (coded)    ~18 % of diabetics, more on insulin (CDC: ~26 % any DR)
osteoporosis                    ~20 % of women and ~4 % of men over 50 (NHANES 2017-2018)
bipolar disorder                ~2.5 %      NIMH 12-month prevalence 2.8 %
alcohol use disorder (coded)    ~3.5 % active, ~1.5 % in remission (NSDUH finds ~10 %, most uncoded)
eating disorder                 ~1 % active, ~1 % in remission; higher in young women (NIMH)
depression (coded)              ~8 %        NSDUH major depressive episode ~8 %
pregnancy                       ~5 % of women 15-50 now, ~3 % ended in the last 9 months (CDC births)
suicidal ideation (coded)       ~0.5 %      rare; PHQ-9 item 9 >= 1 in ~10 % of screened depressed
==============================  ==========  ======================================================

Minors (12-17) and people over 89 are a few percent each, so MIN-01, ALC-03 (under 21) and
"90+" age handling always have patients to act on.
"""

from __future__ import annotations

# Age bands: lower bounds, share of the cohort, and the years each band spans (12-95 overall).
AGE_BANDS: tuple[tuple[int, int, float], ...] = (
    (12, 17, 0.025),
    (18, 29, 0.13),
    (30, 39, 0.15),
    (40, 49, 0.16),
    (50, 59, 0.18),
    (60, 69, 0.17),
    (70, 79, 0.12),
    (80, 89, 0.05),
    (90, 95, 0.015),
)
FEMALE_SHARE = 0.52

# Age-dependent rates use these band edges: 12-17, 18-39, 40-59, 60-74, 75+.
RATE_EDGES = (12, 18, 40, 60, 75)
HYPERTENSION = (0.01, 0.10, 0.36, 0.58, 0.68)
TYPE2_DIABETES = (0.002, 0.02, 0.10, 0.18, 0.19)
TYPE1_DIABETES = 0.005
PREDIABETES = (0.01, 0.05, 0.12, 0.15, 0.14)
CKD_3_TO_5 = (0.0, 0.004, 0.027, 0.08, 0.16)
CKD_RISK_DIABETES = 2.0
CKD_RISK_HYPERTENSION = 1.4
CKD_RISK_NEITHER = 0.55
# Within CKD 3-5: stage 3, stage 4, stage 5 not on dialysis, end-stage on dialysis.
CKD_STAGE_SPLIT = (0.85, 0.09, 0.02, 0.04)
HEART_FAILURE = (0.0, 0.002, 0.012, 0.04, 0.09)
HF_DECOMPENSATED = 0.06
CORONARY_HEART_DISEASE = (0.0, 0.003, 0.04, 0.11, 0.17)
OLD_MI_IN_CHD = 0.40
RECENT_MI_90D = (0.0, 0.0002, 0.002, 0.004, 0.005)
REVASCULARISATION_90D_IN_CHD = 0.03
CABG_SHARE_OF_REVASC = 0.3
UNSTABLE_ANGINA = (0.0, 0.0, 0.0008, 0.0015, 0.002)
ATRIAL_FIBRILLATION = (0.0, 0.001, 0.01, 0.05, 0.10)
AORTIC_STENOSIS = (0.0, 0.0, 0.002, 0.012, 0.035)
RETINOPATHY_NO_INSULIN = 0.12
RETINOPATHY_ON_INSULIN = 0.30
PROLIFERATIVE_SHARE = (0.25, 0.40)  # of retinopathy: without insulin, on insulin
OSTEOPOROSIS_50_PLUS = (0.04, 0.20)  # male, female
VERTEBRAL_FRACTURE_IN_OSTEOPOROSIS = 0.08
BIPOLAR = 0.025
AUD_ACTIVE = 0.035
AUD_REMISSION = 0.015
DEPRESSION = 0.08
EATING_DISORDER = {  # (female, male) for under 40 and 40+; the same again in remission
    "young": (0.02, 0.006),
    "older": (0.006, 0.002),
}
PREGNANT_NOW = 0.05  # of women 15-50, peaking at 20-39
PREGNANCY_ENDED = 0.03
THIRD_TRIMESTER_COMPLICATED = 0.3  # placenta praevia, gestational hypertension, twins
MAJOR_SURGERY_42D = (0.002, 0.01)  # under 50, 50+
SUICIDAL_IDEATION = 0.005
SUICIDAL_IDEATION_RECENT_SHARE = 0.35  # recorded within 30 days
SEVERE_HYPO_90D = (0.04, 0.015)  # on insulin, on a sulfonylurea
SEVERE_HYPO_24H_SHARE = 0.08

# Medication uptake given the condition.
METFORMIN_IN_T2D = 0.75
SULFONYLUREA_IN_T2D = 0.20
INSULIN_IN_T2D = 0.25
ANTIHYPERTENSIVE_IN_HTN = 0.75
SECOND_ANTIHYPERTENSIVE = 0.35
ANTICOAGULANT_IN_AF = 0.75
WARFARIN_SHARE = 0.25
AMIODARONE_IN_AF = 0.08
DISULFIRAM_IN_AUD = 0.10
METRONIDAZOLE_COURSE_30D = 0.012
CYCLOSPORINE = 0.001
BUSPIRONE = 0.01

# Share of adults whose latest BP is within 30 d, 31-90 d, 91-365 d, or older/none.
BP_RECENCY = (0.40, 0.27, 0.23, 0.10)
BP_RECENCY_HTN = (0.50, 0.30, 0.12, 0.08)
BP_CRISIS_IN_HTN = 0.015
BMI_MISSING_365D = 0.12
HF_HOME_WEIGHING = 0.6
HF_WEIGHT_JUMP = 0.12
LAB_PANEL_365D = 0.55
