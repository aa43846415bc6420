/* Empty on purpose: librdkafka 2.11/2.12's cmake build includes <curl/curl.h> even when curl is
 * disabled (upstream librdkafka issue 5135) and uses nothing from it. cross/build.sh puts this
 * directory on the target's C include path. */
