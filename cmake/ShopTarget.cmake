# Common settings for every target of the project: warnings (as errors for our own code),
# sanitizers when asked, and the include-order fix for Boost 1.74 Asio under C++20.
function(shop_target_defaults target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
                                           -Wno-missing-field-initializers)
  if(SHOP_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  # Boost 1.74 Asio needs <utility> before it under C++20 (std::exchange in awaitable.hpp).
  target_compile_options(${target} PRIVATE -include utility)
  target_compile_definitions(${target} PRIVATE PQXX_HAVE_OPTIONAL RAPIDJSON_HAS_STDSTRING=1)
  if(SHOP_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer
                                             -fno-sanitize-recover=undefined)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
endfunction()
