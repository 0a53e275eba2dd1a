// kill -9 across the whole owl graph resumes to the same artifacts.
#include "crash_fixture.h"

// crash_test (tests/support/crash_fixture.h) holds the assertions: every artifact and the report
// equal to an uninterrupted run's after each kill and resume.
TEST(ReliabilitySlow, KillNineAcrossTheWholeOwlGraphResumesToTheSameArtifacts) {
  crash_test(testutil::source_dir() + "/tests/configs/tiny_trait.json", " --jobs 2", 20, "crash_owl");
}

// The default tiers' tiny run (ReliabilityE2E.KillNineAtEight...) killed at twenty random moments.
TEST(ReliabilitySlow, KillNineAtTwentyRandomMomentsResumesToTheSameArtifacts) {
  crash_test(tiny(), kTinyCrashSets, 20, "crash_tiny20");
}
