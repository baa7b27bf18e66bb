# W8A8 quantization per-phase timing, GEMM peaks and peak RSS (bench/quant_bench.sh drives it).
add_executable(quant_bench ${CMAKE_CURRENT_LIST_DIR}/quant_bench.cc)
target_link_libraries(quant_bench PRIVATE moeslim_pipeline)
target_compile_definitions(quant_bench PRIVATE MOESLIM_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
# GPTQ's per-expert work at Qwen3-30B-A3B's shapes (Hessians, factors, int4 GPTQ), one thread by default,
# against the f32 GEMM peak measured in the same run.
add_executable(gptq_bench ${CMAKE_CURRENT_LIST_DIR}/gptq_bench.cc)
target_link_libraries(gptq_bench PRIVATE moeslim_quant)
