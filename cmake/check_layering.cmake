# The layering check (cmake -D MOESLIM_LAYERING_DATA=<build>/layering_targets.cmake -P check_layering.cmake):
# fails when a file includes a header of a module its target does not see, i.e. does not link directly or
# through PUBLIC/INTERFACE links (cmake/Layering.cmake writes the data). A target's files are its sources,
# every file of its folder if it is a module, and the project's non-module headers they include, followed the
# way the compiler finds them: the including file's folder first, then the target's include directories.

cmake_minimum_required(VERSION 3.25)
if(NOT MOESLIM_LAYERING_DATA OR NOT EXISTS "${MOESLIM_LAYERING_DATA}")
  message(FATAL_ERROR "check_layering.cmake: pass -D MOESLIM_LAYERING_DATA=<build>/layering_targets.cmake")
endif()
include("${MOESLIM_LAYERING_DATA}")
set(src_root "${source_root}/src")

# The path of the file that `#include <name>` in file_dir finds (file_dir "" for an <> include), among the
# project's files only, or "" when none. Headers outside the project (the standard library, fmt, ...) are not
# the check's business.
function(resolve_include name file_dir include_dirs out_var)
  set(found "")
  foreach(dir IN LISTS file_dir include_dirs)
    string(FIND "${dir}/" "${source_root}/" at)
    if(at EQUAL 0 AND EXISTS "${dir}/${name}" AND NOT IS_DIRECTORY "${dir}/${name}")
      get_filename_component(found "${dir}/${name}" ABSOLUTE)
      break()
    endif()
  endforeach()
  # A target that links no module has no src/ include directory; its module include is still reported.
  if(NOT found AND name MATCHES "^([^/]+)/" AND CMAKE_MATCH_1 IN_LIST modules AND EXISTS "${src_root}/${name}")
    set(found "${src_root}/${name}")
  endif()
  set(${out_var} "${found}" PARENT_SCOPE)
endfunction()

set(violations "")
set(file_count 0)
foreach(target IN LISTS targets)
  set(pending ${target_${target}_files})
  if(target_${target}_module)
    file(GLOB_RECURSE module_files "${src_root}/${target_${target}_module}/*")
    list(APPEND pending ${module_files})
  endif()
  set(seen "")
  while(pending)
    list(POP_FRONT pending file)
    if(file IN_LIST seen OR NOT EXISTS "${file}" OR NOT file MATCHES "\\.(h|hh|hpp|inc|c|cc|cpp|cxx)$")
      continue()
    endif()
    list(APPEND seen "${file}")
    math(EXPR file_count "${file_count} + 1")
    get_filename_component(file_dir "${file}" DIRECTORY)
    file(RELATIVE_PATH shown_file "${source_root}" "${file}")
    file(STRINGS "${file}" include_lines REGEX "^[ \t]*#[ \t]*include[ \t]*[\"<]")
    foreach(line IN LISTS include_lines)
      if(NOT line MATCHES "include[ \t]*([\"<])([^\">]+)[\">]")
        continue()
      endif()
      set(name "${CMAKE_MATCH_2}")
      set(search_dir "")
      if(CMAKE_MATCH_1 STREQUAL "\"")
        set(search_dir "${file_dir}")
      endif()
      resolve_include("${name}" "${search_dir}" "${target_${target}_include_dirs}" header)
      if(NOT header)
        continue()
      endif()
      file(RELATIVE_PATH in_src "${src_root}" "${header}")
      if(in_src MATCHES "^([^/]+)/" AND CMAKE_MATCH_1 IN_LIST modules)
        set(module "${CMAKE_MATCH_1}")
        if(NOT module IN_LIST target_${target}_visible)
          string(APPEND violations "  ${shown_file} includes \"${name}\" but target ${target} does not link "
                                   "${module_target_${module}} (the ${module} module)\n")
        endif()
      else()
        list(APPEND pending "${header}")
      endif()
    endforeach()
  endwhile()
endforeach()

# Links alone could let a lower module include an upper one: it would only need to link it. A cycle is how
# that shows, since the upper module links the lower one already.
foreach(module IN LISTS modules)
  foreach(other IN LISTS target_${module_target_${module}}_visible)
    if(NOT other STREQUAL module AND module IN_LIST target_${module_target_${other}}_visible)
      list(FIND modules ${module} module_index)
      list(FIND modules ${other} other_index)
      if(module_index LESS other_index)
        string(APPEND violations "  the ${module} and ${other} modules link each other (${module_target_${module}}, "
                                 "${module_target_${other}}): dependencies must point one way\n")
      endif()
    endif()
  endforeach()
endforeach()

if(violations)
  message(FATAL_ERROR "Layering violations: a file may include only the modules its target links, directly or "
                      "through PUBLIC/INTERFACE links, and no two modules may link each other (docs/design.md, "
                      "Modules):\n${violations}")
endif()
list(LENGTH targets target_count)
message(STATUS "Layering: ${file_count} files of ${target_count} targets include only modules their targets link")
