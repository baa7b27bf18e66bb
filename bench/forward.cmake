# Forward-pass throughput / kernel shares / peak RSS (bench/forward_bench.sh drives it).
add_executable(forward_bench ${CMAKE_CURRENT_LIST_DIR}/forward_bench.cc)
target_link_libraries(forward_bench PRIVATE moeslim_model moeslim_text moeslim_kernels)
target_compile_definitions(forward_bench PRIVATE MOESLIM_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
