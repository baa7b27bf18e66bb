# GEMM throughput table (f32 / bf16 / int8, peak and Qwen3-30B-A3B shapes, 1 vs 2 threads).
# Included from bench/CMakeLists.txt.
add_executable(gemm_bench ${CMAKE_CURRENT_LIST_DIR}/gemm_bench.cc)
target_link_libraries(gemm_bench PRIVATE moeslim_kernels)
