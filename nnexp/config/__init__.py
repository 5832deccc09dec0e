"""The rules a config must keep: what each option may be, and what a config may make nnexp run.

Above data and models (the layer list's names come from models/), below everything that runs a config.
`checks.py` holds `check_config` (each option's range, the combinations), with one `*_checks.py` per
group, `layer_list.py` for model.layers and `lr_find.py` for the range test's settings; `job.py` is the
one door a run's config passes (checked once). What only building can tell (the data's shape, the
machine) is checked by `data_fit.py`, `model_fit.py` and `machine_checks.py`, which train/ calls.
`trust.py` says which `_target_`s and resolvers a config may use, applied to the command line's configs
and to every config read back from a run or sweep folder, which is data somebody else may have written.
"""
