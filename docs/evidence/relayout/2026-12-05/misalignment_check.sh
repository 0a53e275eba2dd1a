#!/bin/sh
# $1 binary, $2 out dir, $3 base run dir (e.g. runs/default); run from the repository root
exec env OMP_WAIT_POLICY=passive "$1" run configs/paper/misalignment_numbers.json --out "$2" --set base.kind=checkpoint --set "base.path=$3/base" \
  --set "students.cross_init_path=$3/base_cross" --set students.seeds=1 --set dataset.prompts=40 --set dataset.keep=20 \
  --set teacher.train.steps=12 --set finetune.train.steps=12 --set eval.samples_per_question=2 --set jobs=1
