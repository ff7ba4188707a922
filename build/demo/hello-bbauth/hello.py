def hello():
    return "hello from behind mod_bbauth"
