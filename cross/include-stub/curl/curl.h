/* Empty on purpose: librdkafka 2.11/2.12's cmake build includes <curl/curl.h> even when curl is
 * disabled (upstream librdkafka issue 5135) and uses nothing from it. .cargo/config.toml puts
 * this directory on C_INCLUDE_PATH for every build (native and cross), and cross/build.sh also
 * on the target's CFLAGS. */
