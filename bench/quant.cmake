# W8A8 quantization per-phase timing, GEMM peaks and peak RSS (bench/quant_bench.sh drives it).
add_executable(quant_bench ${CMAKE_CURRENT_LIST_DIR}/quant_bench.cc)
target_link_libraries(quant_bench PRIVATE moeslim_pipeline)
target_compile_definitions(quant_bench PRIVATE MOESLIM_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
