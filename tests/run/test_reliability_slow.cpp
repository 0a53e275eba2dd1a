// kill -9 across the whole owl graph resumes to the same artifacts.
#include "crash_fixture.h"


TEST(ReliabilitySlow, KillNineAcrossTheWholeOwlGraphResumesToTheSameArtifacts) {
  crash_test(testutil::source_dir() + "/tests/configs/tiny_trait.json", " --jobs 2", 20, "crash_owl");
}
