# Runs the generator GEN and fails unless its standard output equals the committed file WANT.
execute_process(COMMAND ${GEN} OUTPUT_VARIABLE got RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${GEN} failed (${rc})")
endif()
file(READ ${WANT} want)
if(NOT got STREQUAL want)
  message(FATAL_ERROR "${WANT} is not ${GEN}'s output: regenerate it (see the generator's header)")
endif()
