server {
  listen = "127.0.0.1:9464"
}

server {
  listen = "127.0.0.1:9465"
}
