"""The fixed vocabulary of the contract (§1): record types, item keys, symptom names, coded values.

Wording for each code lives in the instrument data files and the message catalogue; the codes here
are what travels on the wire and what the database stores.
"""

RECORD_TYPES = ("alsfrs_r", "nasal_symptoms", "dose_confirmation")
RESPONDENTS = ("participant", "caregiver", "participant_assisted")

# ALSFRS-R: twelve scored items; item 5 is 5a (no gastrostomy) or 5b (gastrostomy)
ALSFRS_ITEM_KEYS_5A = ("1", "2", "3", "4", "5a", "6", "7", "8", "9", "10", "11", "12")
ALSFRS_ITEM_KEYS_5B = ("1", "2", "3", "4", "5b", "6", "7", "8", "9", "10", "11", "12")
ALSFRS_ALL_KEYS = ("1", "2", "3", "4", "5a", "5b", "6", "7", "8", "9", "10", "11", "12")
DOMAINS = {
    "bulbar": ("1", "2", "3"),
    "fine_motor": ("4", "5", "6"),
    "gross_motor": ("7", "8", "9"),
    "respiratory": ("10", "11", "12"),
}
RESPIRATORY_ITEMS = ("10", "11", "12")

NASAL_SYMPTOMS = (
    "rhinorrhea", "congestion", "itching", "sneezing",
    "burning_stinging", "epistaxis", "postnasal_drip_throat", "sinus_facial_pain", "headache",
    "smell_change", "taste_change", "cough_choking_dosing", "dizziness", "allergic_signs",
)
TNSS_SYMPTOMS = ("rhinorrhea", "congestion", "itching", "sneezing")
NULLABLE_SYMPTOMS = ("cough_choking_dosing",)

ADMINISTERED_BY = ("participant", "caregiver", "site_staff")
VOLUMES = ("full", "partial")
LOSS_REASONS = ("sneezed", "ran_out", "swallowed", "coughed_choked")
MISSED_REASONS = (
    "forgot", "unwell", "nasal_problem", "product_issue", "hospitalised", "site_visit_missed",
    "withheld_by_investigator", "withdrew", "other",
)
NOSTRILS = ("left", "right")

NOTES_MAX = 2000
SHORT_TEXT_MAX = 500
