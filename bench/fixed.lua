-- For the nginx ceiling: plain GET, same report format.

dofile(os.getenv("BENCH_DIR") .. "/report.lua")
