"""The three questionnaires as one-question-per-page forms over a shared wizard (``base``)."""

from desktop.ui.forms.alsfrs import AlsfrsForm
from desktop.ui.forms.dose import DoseForm
from desktop.ui.forms.nasal import NasalForm

FORMS = {"alsfrs_r": AlsfrsForm, "nasal_symptoms": NasalForm, "dose_confirmation": DoseForm}
