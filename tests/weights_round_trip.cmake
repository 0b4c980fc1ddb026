# Runs `switchyard run --experts reference` twice: once writing its seeded weights to a
# safetensors shard, once reading them back with --weights. Both layer outputs must match.
set(common run --device cpu --model ${MODEL} --tokens 24 --hidden 96 --intermediate 40 --layer 7 --json)
execute_process(COMMAND ${CLI} ${common} --experts reference --save-weights ${FILE}
                RESULT_VARIABLE rc1 OUTPUT_VARIABLE out1 ERROR_VARIABLE err1)
execute_process(COMMAND ${CLI} ${common} --weights ${FILE}
                RESULT_VARIABLE rc2 OUTPUT_VARIABLE out2 ERROR_VARIABLE err2)
if(NOT rc1 EQUAL 0 OR NOT rc2 EQUAL 0)
  message(FATAL_ERROR "exit codes ${rc1} / ${rc2}\n${err1}\n${err2}")
endif()
string(REGEX MATCH "\"output_checksum\": [0-9.e+-]+" sum1 "${out1}")
string(REGEX MATCH "\"output_checksum\": [0-9.e+-]+" sum2 "${out2}")
if(sum1 STREQUAL "" OR NOT sum1 STREQUAL sum2)
  message(FATAL_ERROR "checksums differ: '${sum1}' vs '${sum2}'")
endif()
message(STATUS "ok: ${sum1}")
