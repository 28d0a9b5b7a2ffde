"""The coded concepts the synthetic cohort uses, built once and shared between patients.

Codes follow ``clinical/rules-spec.md`` so that the guardrails have work to do. Codings are
immutable, so one :class:`Coding` object serves every patient who has that concept.

Codes marked ✓ in rules-spec were checked there. The others (most RxNorm ingredients outside the
spec, FY2025 eating-disorder suffixes, a few SNOMED findings and ICD-10-PCS procedure codes) come from
the author's knowledge and are *unverified*: fine for synthetic data, not a terminology source.
"""

from __future__ import annotations

from dataclasses import dataclass

from nudge_engine.domain.codes import CodeSystem
from nudge_engine.domain.context import Coding

Concept = tuple[Coding, ...]


def icd(code: str, display: str) -> Coding:
    return Coding(CodeSystem.ICD10CM.value, code, display)


def sct(code: str, display: str) -> Coding:
    return Coding(CodeSystem.SNOMED.value, code, display)


def pcs(code: str, display: str) -> Coding:
    return Coding(CodeSystem.ICD10PCS.value, code, display)


def drug(name: str, rxnorm: str, atc: str) -> Concept:
    """One ingredient with its RxNorm and ATC codings (rules match either)."""
    return (Coding(CodeSystem.RXNORM.value, rxnorm, name), Coding(CodeSystem.ATC.value, atc, name))


@dataclass(frozen=True, slots=True)
class Measure:
    """An observation code with its UCUM unit."""

    codings: Concept
    unit: str


def loinc(code: str, display: str, unit: str) -> Measure:
    return Measure((Coding(CodeSystem.LOINC.value, code, display),), unit)


# --- conditions: (ICD-10-CM first; a second, SNOMED-only variant where Synthea would use one) ---
HYPERTENSION = (icd("I10", "Essential (primary) hypertension"),)
HYPERTENSION_SCT = (sct("38341003", "Hypertensive disorder"),)
HYPERTENSIVE_HEART_DISEASE_HF = (icd("I11.0", "Hypertensive heart disease with heart failure"),)
T2D = (icd("E11.9", "Type 2 diabetes mellitus without complications"),)
T2D_HYPERGLYCAEMIA = (icd("E11.65", "Type 2 diabetes mellitus with hyperglycemia"),)
T2D_SCT = (sct("44054006", "Diabetes mellitus type 2"),)
T2D_CKD = (icd("E11.22", "Type 2 diabetes mellitus with diabetic chronic kidney disease"),)
T1D = (icd("E10.9", "Type 1 diabetes mellitus without complications"), sct("46635009", "Diabetes mellitus type 1"))
PREDIABETES = (icd("R73.03", "Prediabetes"),)
PREDIABETES_SCT = (sct("15777000", "Prediabetes"),)
CKD_STAGE = {
    3: (icd("N18.30", "Chronic kidney disease, stage 3 unspecified"),
        sct("433144002", "Chronic kidney disease stage 3")),
    4: (icd("N18.4", "Chronic kidney disease, stage 4 (severe)"), sct("431857002", "Chronic kidney disease stage 4")),
    5: (icd("N18.5", "Chronic kidney disease, stage 5"), sct("433146000", "Chronic kidney disease stage 5")),
}
ESRD = (icd("N18.6", "End stage renal disease"), sct("46177005", "End-stage renal disease"))
DIALYSIS_STATUS = (icd("Z99.2", "Dependence on renal dialysis"),)
HF_CHRONIC = (
    (icd("I50.22", "Chronic systolic (congestive) heart failure"),),
    (icd("I50.32", "Chronic diastolic (congestive) heart failure"),),
    (icd("I50.9", "Heart failure, unspecified"), sct("84114007", "Heart failure")),
    (sct("42343007", "Congestive heart failure"),),
)
HF_DECOMPENSATED = (
    (icd("I50.21", "Acute systolic (congestive) heart failure"),),
    (icd("I50.23", "Acute on chronic systolic (congestive) heart failure"),),
    (icd("I50.33", "Acute on chronic diastolic (congestive) heart failure"),),
)
CHD = (icd("I25.10", "Atherosclerotic heart disease of native coronary artery without angina pectoris"),)
OLD_MI = (icd("I25.2", "Old myocardial infarction"), sct("1755008", "Old myocardial infarction"))
ACUTE_MI = (icd("I21.4", "Non-ST elevation (NSTEMI) myocardial infarction"), sct("22298006", "Myocardial infarction"))
UNSTABLE_ANGINA = (icd("I20.0", "Unstable angina"),)
AORTIC_STENOSIS = (icd("I35.0", "Nonrheumatic aortic (valve) stenosis"), sct("60573004", "Aortic valve stenosis"))
# Retinopathy: index 1 = T1D, 2 = T2D (the ICD category differs), mild vs proliferative.
RETINOPATHY_MILD = {
    1: (icd("E10.3293", "Type 1 diabetes mellitus with mild NPDR without macular edema, bilateral"),),
    2: (icd("E11.3293", "Type 2 diabetes mellitus with mild NPDR without macular edema, bilateral"),),
}
RETINOPATHY_PROLIFERATIVE = {
    1: (icd("E10.3593", "Type 1 diabetes mellitus with PDR without macular edema, bilateral"),),
    2: (
        icd("E11.3593", "Type 2 diabetes mellitus with PDR without macular edema, bilateral"),
        sct("59276001", "Proliferative diabetic retinopathy"),
    ),
}
SEVERE_HYPO = {
    1: (icd("E10.641", "Type 1 diabetes mellitus with hypoglycemia with coma"),),
    2: (icd("E11.641", "Type 2 diabetes mellitus with hypoglycemia with coma"),),
}
PREGNANCY = (
    (icd("Z34.00", "Encounter for supervision of normal first pregnancy, unspecified trimester"),),
    (icd("Z34.80", "Encounter for supervision of other normal pregnancy, unspecified trimester"),),
    (sct("72892002", "Normal pregnancy"),),
    (sct("77386006", "Pregnant"),),
)
PREGNANCY_COMPLICATIONS = (
    (icd("O13.3", "Gestational hypertension without significant proteinuria, third trimester"),),
    (icd("O44.03", "Complete placenta previa NOS or without hemorrhage, third trimester"),),
    (icd("O30.003", "Twin pregnancy, unspecified number of placenta and amniotic sacs, third trimester"),),
)
DELIVERY = (icd("Z39.2", "Encounter for routine postpartum follow-up"),)
EATING_DISORDER_ACTIVE = (
    (icd("F50.010", "Anorexia nervosa, restricting type"), sct("56882008", "Anorexia nervosa")),
    (icd("F50.20", "Bulimia nervosa"), sct("78004001", "Bulimia nervosa")),
    (icd("F50.810", "Binge eating disorder"), sct("439960005", "Binge eating disorder")),
)
EATING_DISORDER_REMISSION_CODED = (
    (icd("F50.014", "Anorexia nervosa, restricting type, in remission"),),
    (icd("F50.25", "Bulimia nervosa, in remission"),),
    (icd("F50.814", "Binge eating disorder, in remission"),),
)
BIPOLAR = (icd("F31.9", "Bipolar disorder, unspecified"), sct("13746004", "Bipolar disorder"))
AUD_ACTIVE = (icd("F10.20", "Alcohol dependence, uncomplicated"), sct("66590003", "Alcohol dependence"))
AUD_REMISSION = (icd("F10.21", "Alcohol dependence, in remission"),)
DEPRESSION = (icd("F33.1", "Major depressive disorder, recurrent, moderate"),)
OSTEOPOROSIS = (icd("M81.0", "Age-related osteoporosis without current pathological fracture"),
                sct("64859006", "Osteoporosis"))
VERTEBRAL_FRACTURE = (
    icd("M80.08XA", "Age-related osteoporosis with current pathological fracture, vertebra(e), initial encounter"),
)
JOINT_AFTERCARE = (icd("Z47.1", "Aftercare following joint replacement surgery"),)
SUICIDAL_IDEATION = (icd("R45.851", "Suicidal ideations"), sct("6471006", "Suicidal thoughts"))

# --- procedures ---
CABG = (sct("232717009", "Coronary artery bypass grafting"),
        pcs("021009W", "Bypass coronary artery, one artery from aorta with autologous venous tissue, open"))
PCI = (sct("415070008", "Percutaneous coronary intervention"),
       pcs("027034Z", "Dilation of coronary artery, one artery with drug-eluting intraluminal device, perc"))
KNEE_REPLACEMENT = (sct("609588000", "Total knee replacement"),)
HIP_REPLACEMENT = (sct("52734007", "Total replacement of hip"),)
HAEMODIALYSIS = (sct("302497006", "Hemodialysis"),)

# --- medications: RxNorm ingredient + ATC ---
LISINOPRIL = drug("lisinopril", "29046", "C09AA03")
LOSARTAN = drug("losartan", "52175", "C09CA01")
AMLODIPINE = drug("amlodipine", "17767", "C08CA01")
HCTZ = drug("hydrochlorothiazide", "5487", "C03AA03")
NIFEDIPINE = drug("nifedipine", "7417", "C08CA05")
FELODIPINE = drug("felodipine", "4316", "C08CA02")
METOPROLOL = drug("metoprolol", "6918", "C07AB02")
METFORMIN = drug("metformin", "6809", "A10BA02")
GLIPIZIDE = drug("glipizide", "4821", "A10BB07")
GLIMEPIRIDE = drug("glimepiride", "25789", "A10BB12")
GLYBURIDE = drug("glyburide", "4815", "A10BB01")
INSULIN_GLARGINE = drug("insulin glargine", "274783", "A10AE04")
INSULIN_LISPRO = drug("insulin lispro", "86009", "A10AB04")
SIMVASTATIN = drug("simvastatin", "36567", "C10AA01")
ATORVASTATIN = drug("atorvastatin", "83367", "C10AA05")
ROSUVASTATIN = drug("rosuvastatin", "301542", "C10AA07")
LOVASTATIN = drug("lovastatin", "6472", "C10AA02")
WARFARIN = drug("warfarin", "11289", "B01AA03")
APIXABAN = drug("apixaban", "1364430", "B01AF02")
RIVAROXABAN = drug("rivaroxaban", "1114195", "B01AF01")
AMIODARONE = drug("amiodarone", "703", "C01BD01")
FUROSEMIDE = drug("furosemide", "4603", "C03CA01")
SPIRONOLACTONE = drug("spironolactone", "9997", "C03DA01")
CARVEDILOL = drug("carvedilol", "20352", "C07AG02")
DISULFIRAM = drug("disulfiram", "3554", "N07BB01")
NALTREXONE = drug("naltrexone", "7243", "N07BB04")
METRONIDAZOLE = drug("metronidazole", "6922", "P01AB01")
LITHIUM = drug("lithium", "6448", "N05AN01")
QUETIAPINE = drug("quetiapine", "51272", "N05AH04")
SERTRALINE = drug("sertraline", "36437", "N06AB06")
BUSPIRONE = drug("buspirone", "1827", "N05BE01")
ALENDRONATE = drug("alendronate", "46041", "M05BA04")
CYCLOSPORINE = drug("cyclosporine", "3008", "L04AD01")

ANTIHYPERTENSIVES = (LISINOPRIL, LOSARTAN, AMLODIPINE, HCTZ, NIFEDIPINE, FELODIPINE, METOPROLOL)
ANTIHYPERTENSIVE_WEIGHTS = (0.32, 0.18, 0.22, 0.14, 0.04, 0.02, 0.08)
SULFONYLUREAS = (GLIPIZIDE, GLIMEPIRIDE, GLYBURIDE)
STATINS = (ATORVASTATIN, SIMVASTATIN, ROSUVASTATIN, LOVASTATIN)
STATIN_WEIGHTS = (0.50, 0.22, 0.23, 0.05)

# --- observations (LOINC + UCUM) ---
SBP = loinc("8480-6", "Systolic blood pressure", "mm[Hg]")
DBP = loinc("8462-4", "Diastolic blood pressure", "mm[Hg]")
BMI = loinc("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2")
BODY_WEIGHT = loinc("29463-7", "Body weight", "kg")
BODY_HEIGHT = loinc("8302-2", "Body height", "cm")
HBA1C = loinc("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%")
GLUCOSE = loinc("2339-0", "Glucose [Mass/volume] in Blood", "mg/dL")
POTASSIUM = loinc("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L")
SODIUM = loinc("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L")
EGFR = loinc("33914-3", "Glomerular filtration rate/1.73 sq M.predicted [MDRD]", "mL/min/{1.73_m2}")
PHQ9_ITEM9 = loinc("44260-8", "Thoughts that you would be better off dead, or of hurting yourself", "{score}")
GESTATIONAL_AGE = loinc("49051-6", "Gestational age in weeks", "wk")
PREGNANCY_STATUS = (Coding(CodeSystem.LOINC.value, "82810-3", "Pregnancy status"),)
PREGNANT = sct("77386006", "Pregnant")
NOT_PREGNANT = sct("60001007", "Not pregnant")
