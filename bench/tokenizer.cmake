# Tokenizer throughput (MB/s, tokens/s; cold and warm piece cache) and tokenizer.json load time, for the
# real Qwen3 tokenizer and the tiny model's, on the 96 calibration prompts. Included from bench/CMakeLists.txt.
add_executable(tokenizer_bench ${CMAKE_CURRENT_LIST_DIR}/tokenizer_bench.cc)
target_link_libraries(tokenizer_bench PRIVATE moeslim_text moeslim_core)
get_filename_component(MOESLIM_TOKENIZER_BENCH_ROOT "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
target_compile_definitions(tokenizer_bench PRIVATE MOESLIM_SOURCE_DIR="${MOESLIM_TOKENIZER_BENCH_ROOT}")
