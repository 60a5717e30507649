-- GET /ivr/<id> with the bench's API key (BENCH_KEY, BENCH_IVR from the environment).
dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")
wrk.method = "GET"
wrk.path = "/ivr/" .. os.getenv("BENCH_IVR")
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
