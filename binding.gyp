{
  "targets": [
    {
      "target_name": "kubewire_tap",
      "sources": [
        "src/tap/native/tap.cc",
        "src/tap/native/packet.cc",
        "src/tap/native/errno_name.cc"
      ],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-fvisibility=hidden"],
      "configurations": {
        "Release": {
          "cflags!": ["-O3"],
          "cflags": ["-O2"]
        }
      },
      "conditions": [
        [
          "OS!='linux'",
          {
            "sources!": [
              "src/tap/native/tap.cc",
              "src/tap/native/packet.cc",
              "src/tap/native/errno_name.cc"
            ],
            "sources": ["src/tap/native/unsupported.cc"]
          }
        ]
      ]
    },
    {
      "target_name": "kubewire_udp",
      "sources": ["src/udp/native/udp.cc", "src/tap/native/errno_name.cc"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-fvisibility=hidden"],
      "configurations": {
        "Release": {
          "cflags!": ["-O3"],
          "cflags": ["-O2"]
        }
      },
      "conditions": [
        [
          "OS!='linux'",
          {
            "sources!": ["src/udp/native/udp.cc", "src/tap/native/errno_name.cc"],
            "sources": ["src/udp/native/unsupported.cc"]
          }
        ]
      ]
    }
  ]
}
