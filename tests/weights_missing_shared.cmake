# Writes deepseek-v3 weights without the shared experts (--shared-intermediate 0), then reads them
# back as the preset (which has a shared expert): exit code 2 and a message naming the tensor.
set(common run --device cpu --model deepseek-v3 --tokens 4 --hidden 64 --intermediate 32)
execute_process(COMMAND ${CLI} ${common} --shared-intermediate 0 --save-weights ${FILE}
                RESULT_VARIABLE rc1 OUTPUT_VARIABLE out1 ERROR_VARIABLE err1)
if(NOT rc1 EQUAL 0)
  message(FATAL_ERROR "saving the weights failed (${rc1}):\n${err1}")
endif()
execute_process(COMMAND ${CLI} ${common} --weights ${FILE}
                RESULT_VARIABLE rc2 OUTPUT_VARIABLE out2 ERROR_VARIABLE err2)
set(expect "model.layers.0.mlp.shared_experts.gate_proj.weight not found")
string(FIND "${err2}" "${expect}" pos)
if(NOT rc2 EQUAL 2 OR pos EQUAL -1)
  message(FATAL_ERROR "expected exit code 2 and '${expect}', got ${rc2}:\n${err2}")
endif()
# And without the shared experts it runs.
execute_process(COMMAND ${CLI} ${common} --weights ${FILE} --shared-intermediate 0
                RESULT_VARIABLE rc3 OUTPUT_VARIABLE out3 ERROR_VARIABLE err3)
if(NOT rc3 EQUAL 0)
  message(FATAL_ERROR "reading with --shared-intermediate 0 failed (${rc3}):\n${err3}")
endif()
message(STATUS "ok: ${err2}")
