// kill -9 across the whole owl graph resumes to the same artifacts.
#include "crash_fixture.h"

// crash_test (tests/support/crash_fixture.h) holds the assertions: every artifact and the report
// equal to an uninterrupted run's after each kill and resume.
TEST(ReliabilitySlow, KillNineAcrossTheWholeOwlGraphResumesToTheSameArtifacts) {
  crash_test(testutil::source_dir() + "/tests/configs/tiny_trait.json", " --jobs 2", 20, "crash_owl");
}

// The default tiers' tiny run (ReliabilityE2E.KillNineAtEight...) killed at twenty random moments.
TEST(ReliabilitySlow, KillNineAtTwentyRandomMomentsResumesToTheSameArtifacts) {
  crash_test(testutil::source_dir() + "/tests/configs/tiny.json",
             " --set base.train.steps=60 --set base.train.checkpoint_every=7 --set probe.batch_size=8", 20, "crash_tiny20");
}
