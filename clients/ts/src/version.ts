// The version of the Sovereign HTTP API this SDK was generated from
// (openapi.yaml info.version). The package's own version shares its major
// and minor numbers; its patch number counts SDK releases for that API.
export const API_VERSION = "1.0.0"
