"""The patient side of a prediction: stimulation sites, the patient file and its questionnaire."""

from emsim.body.sites import Site, get_site, site_ids, target_site_ids
from emsim.body.patient import Patient, load_patient, loads_patient, patient_schema
from emsim.body.cohort import cohort, populations

__all__ = ["Site", "get_site", "site_ids", "target_site_ids", "Patient", "load_patient",
           "loads_patient", "patient_schema", "cohort", "populations"]
